-- Store items (LangGraph BaseStore) belong to their agent, as every memory.
SELECT memory_system._apply_agent_policies('nexus_memory.store_items');
SELECT memory_system._apply_space_policies('nexus_memory.store_items', true);
