SELECT memory_system._apply_agent_policies('nexus_memory.semantic_memories');
