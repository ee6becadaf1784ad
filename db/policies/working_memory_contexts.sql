SELECT memory_system._apply_agent_policies('nexus_memory.working_memory_contexts');
