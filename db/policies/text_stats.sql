-- Agents read their own text_stats (search runs with their rights); only the text-index triggers write it.
SELECT memory_system._apply_agent_policies('nexus_memory.text_stats');
SELECT memory_system._apply_space_policies('nexus_memory.text_stats', false);
