-- The facts distilled from an episode, for an agent: what deleting an episode reads to clear
-- their source_episode_id (the foreign key's ON DELETE SET NULL runs one query per deleted
-- episode). Without it that query read all of the agent's facts, once per episode: forgetting
-- 100,000 episodes of an agent with 10,000 facts read a billion rows (nexus.forget, agent
-- removal, the retention sweep; docs/privacy.md).
--
-- Cost: one more B-tree entry per fact that names its source episode (none for the others).

CREATE INDEX semantic_memories_source_episode_idx
    ON nexus_memory.semantic_memories (agent_id, source_episode_id)
    WHERE source_episode_id IS NOT NULL;
