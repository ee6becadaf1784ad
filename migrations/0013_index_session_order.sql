-- The episodes of a session in the order they were recorded (id), for an agent: what
-- nexus.memory_search reads to find the episodes just before and after a hit in its session (the
-- neighbours that share its score, neighbour_weight, and that context => N returns with it). With
-- only the (agent_id, session_id, created_at) index, the neighbours of an episode of a session
-- written in one transaction (all rows with the same created_at) meant reading the whole session.
--
-- Cost: one more B-tree entry per episode that has a session (none for those without).

CREATE INDEX zep_episodic_memory_agent_session_id_idx
    ON nexus_memory.zep_episodic_memory (agent_id, session_id, id)
    WHERE session_id IS NOT NULL;
