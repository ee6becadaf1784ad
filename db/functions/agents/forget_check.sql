-- The verification pass of forgetting (docs/privacy.md): what is left in PostgreSQL of an agent's
-- memories that match a filter, or of the whole agent. Owner only (nexus forget, nexus agent
-- remove); the Redis side is checked by the command (nexus/forgetting.py).

CREATE OR REPLACE FUNCTION memory_system.forget_leftovers(
    p_agent              text,
    p_kinds              text[] DEFAULT '{episode,semantic,store}',
    p_tags_all           text[] DEFAULT NULL,
    p_session            text DEFAULT NULL,
    p_since              timestamptz DEFAULT NULL,
    p_until              timestamptz DEFAULT NULL,
    p_metadata_contains  jsonb DEFAULT NULL)
RETURNS TABLE (place text, remaining bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH f AS (
        SELECT nullif(p_tags_all, '{}') AS tags, nullif(p_metadata_contains, '{}') AS meta,
               -- no criterion: the whole agent (nexus agent remove)
               p_session IS NULL AND p_since IS NULL AND p_until IS NULL
               AND nullif(p_tags_all, '{}') IS NULL AND nullif(p_metadata_contains, '{}') IS NULL AS whole
    ), places (place, remaining, whole_only) AS (
        -- the memories themselves
        SELECT 'episodes', (SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e
                             WHERE e.agent_id = p_agent AND 'episode' = ANY (p_kinds)
                               AND (p_session IS NULL OR e.session_id = p_session)
                               AND nexus._memory_filter(e.created_at, e.tags, e.metadata, p_since, p_until,
                                                        f.tags, f.meta)), false FROM f
        UNION ALL
        SELECT 'facts', (SELECT count(*) FROM nexus_memory.semantic_memories AS s
                          WHERE s.agent_id = p_agent AND 'semantic' = ANY (p_kinds) AND p_session IS NULL
                            AND nexus._memory_filter(s.created_at, s.tags, s.metadata, p_since, p_until,
                                                     f.tags, f.meta)), false FROM f
        UNION ALL
        SELECT 'store items', (SELECT count(*) FROM nexus_memory.store_items AS i
                                WHERE i.agent_id = p_agent AND 'store' = ANY (p_kinds) AND p_session IS NULL
                                  AND nexus._memory_filter(i.created_at, '{}', jsonb_build_object(
                                          'namespace', i.namespace, 'key', i.key), p_since, p_until, f.tags,
                                          f.meta)), false FROM f
        -- the copies derived from them: none may outlive its memory
        UNION ALL
        SELECT 'vectors', (SELECT count(*) FROM nexus_memory.episode_embeddings AS x WHERE x.agent_id = p_agent
                              AND NOT EXISTS (SELECT FROM nexus_memory.zep_episodic_memory AS e
                                               WHERE e.agent_id = x.agent_id AND e.id = x.episode_id))
                        + (SELECT count(*) FROM nexus_memory.semantic_memory_embeddings AS x WHERE x.agent_id = p_agent
                              AND NOT EXISTS (SELECT FROM nexus_memory.semantic_memories AS s
                                               WHERE s.agent_id = x.agent_id AND s.id = x.memory_id))
                        + (SELECT count(*) FROM nexus_memory.store_text_embeddings AS x WHERE x.agent_id = p_agent
                              AND NOT EXISTS (SELECT FROM nexus_memory.store_texts AS t
                                               WHERE t.agent_id = x.agent_id AND t.id = x.text_id)), false
        UNION ALL
        SELECT 'postings', (SELECT count(*) FROM nexus_memory.text_postings AS p
                             WHERE p.agent_id = p_agent AND NOT CASE
                                 WHEN p.kind = 'e' THEN EXISTS (SELECT FROM nexus_memory.zep_episodic_memory AS e
                                                        WHERE e.agent_id = p.agent_id AND e.id = p.doc_id)
                                 -- a fact's postings: s, h or f (migration 0022)
                                 WHEN p.kind IN ('s', 'h', 'f') THEN EXISTS (SELECT FROM nexus_memory.semantic_memories AS s
                                                        WHERE s.agent_id = p.agent_id AND s.id = p.doc_id)
                                 ELSE EXISTS (SELECT FROM nexus_memory.store_texts AS t
                                               WHERE t.agent_id = p.agent_id AND t.id = p.doc_id) END), false
        UNION ALL
        SELECT 'queue items', (SELECT count(*) FROM memory_system.embeddings_queue AS q
                                WHERE q.agent_id = p_agent AND NOT CASE q.source_table
                                    WHEN 'zep_episodic_memory' THEN EXISTS (
                                        SELECT FROM nexus_memory.zep_episodic_memory AS e
                                         WHERE e.agent_id = q.agent_id AND e.id = q.source_id)
                                    WHEN 'semantic_memories' THEN EXISTS (
                                        SELECT FROM nexus_memory.semantic_memories AS s
                                         WHERE s.agent_id = q.agent_id AND s.id = q.source_id)
                                    ELSE EXISTS (SELECT FROM nexus_memory.store_texts AS t
                                                  WHERE t.agent_id = q.agent_id AND t.id = q.source_id) END), false
        UNION ALL
        SELECT 'import ledger', (SELECT count(*) FROM memory_system.import_rows AS r
                                  WHERE r.agent_id = p_agent AND (f.whole OR (r.kind = 'episode' AND NOT EXISTS (
                                            SELECT FROM nexus_memory.zep_episodic_memory AS e
                                             WHERE e.agent_id = r.agent_id AND e.id = r.target_id))
                                        OR (r.kind = 'semantic' AND NOT EXISTS (
                                            SELECT FROM nexus_memory.semantic_memories AS s
                                             WHERE s.agent_id = r.agent_id AND s.id = r.target_id))))
                               + (SELECT count(*) FROM memory_system.import_rejects AS j
                                   WHERE f.whole AND j.agent_id = p_agent), false FROM f
        -- BM25's corpus counters: as many documents as the agent has texts
        UNION ALL
        SELECT 'text_stats', abs(coalesce((SELECT sum(t.docs) FROM nexus_memory.text_stats AS t
                                            WHERE t.agent_id = p_agent), 0)
                                 - (SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = p_agent)
                                 - (SELECT count(*) FROM nexus_memory.semantic_memories AS s WHERE s.agent_id = p_agent)
                                 - (SELECT count(*) FROM nexus_memory.store_texts AS t WHERE t.agent_id = p_agent))
                             + (SELECT count(*) FROM nexus_memory.text_stats AS t
                                 WHERE f.whole AND t.agent_id = p_agent
                                   AND NOT EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_agent)),
               false FROM f
        -- changes the Redis mirror has not applied yet
        UNION ALL
        SELECT 'cache outbox', (SELECT count(*) FROM memory_system.cache_outbox AS o WHERE o.agent_id = p_agent), false
        -- the whole agent only
        UNION ALL
        SELECT 'store texts', (SELECT count(*) FROM nexus_memory.store_texts AS t WHERE t.agent_id = p_agent), true
        UNION ALL
        SELECT 'working memory', (SELECT count(*) FROM nexus_memory.working_memory_contexts AS w
                                   WHERE w.agent_id = p_agent), true
        UNION ALL
        SELECT 'checkpoints', (SELECT count(*) FROM consciousness.consciousness_checkpoints AS c
                                WHERE c.agent_id = p_agent), true
        UNION ALL
        SELECT 'tokens', (SELECT count(*) FROM memory_system.agent_tokens AS k WHERE k.agent_id = p_agent), true
        UNION ALL
        SELECT 'reads', (SELECT count(*) FROM memory_system.reads AS r WHERE r.agent_id = p_agent), true
        UNION ALL
        SELECT 'agent', (SELECT count(*) FROM memory_system.agents AS a WHERE a.agent_id = p_agent)
                      + (SELECT count(*) FROM pg_catalog.pg_roles AS r WHERE r.rolname = p_agent), true
        UNION ALL
        SELECT 'vector partitions', (SELECT count(*) FROM pg_catalog.pg_class AS c
                                      WHERE c.relnamespace = 'nexus_parts'::regnamespace
                                        AND c.relname IN (
                                            memory_system._vector_partition('episode_embeddings', p_agent),
                                            memory_system._vector_partition('semantic_memory_embeddings', p_agent),
                                            memory_system._vector_partition('store_text_embeddings', p_agent))), true
    )
    SELECT p.place, p.remaining FROM places AS p, f WHERE f.whole OR NOT p.whole_only
$$;
COMMENT ON FUNCTION memory_system.forget_leftovers(text, text[], text[], text, timestamptz, timestamptz, jsonb) IS
'The verification pass of forgetting: what PostgreSQL still holds of agent p_agent''s memories that
match the filter (those of nexus.forget; kinds by name), one row per place with its count (0: none
left). Places: episodes, facts, store items that match; vectors, postings, queue items and
import-ledger entries whose memory is gone; text_stats off by (documents counted minus texts
held); cache outbox entries the Redis mirror has not applied. With no criterion, the whole agent
(after nexus agent remove): also its store texts, working memory, checkpoints, tokens, registry row
and role, vector partitions, every import-ledger entry and text_stats row. Owner only (nexus forget,
nexus agent remove --delete-memories).';
