SELECT memory_system._apply_agent_policies('nexus_memory.zep_episodic_memory');
SELECT memory_system._apply_space_policies('nexus_memory.zep_episodic_memory', true);
