-- An item's texts are its agent's own, like the item; the text-index and queue triggers follow them.
SELECT memory_system._apply_agent_policies('nexus_memory.store_texts');
SELECT memory_system._apply_space_policies('nexus_memory.store_texts', true);
