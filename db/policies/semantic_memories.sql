SELECT memory_system._apply_agent_policies('nexus_memory.semantic_memories');
SELECT memory_system._apply_space_policies('nexus_memory.semantic_memories', true);
