-- Agents read their own vectors (search runs with their rights); only complete_batch writes them.
SELECT memory_system._apply_agent_policies('nexus_memory.semantic_memory_embeddings');
SELECT memory_system._apply_space_policies('nexus_memory.semantic_memory_embeddings', false);
