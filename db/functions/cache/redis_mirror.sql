-- The Redis mirror of working memory and of each agent's recent episodes: PostgreSQL first, Redis
-- second. Triggers queue what changed in memory_system.cache_outbox (in the writer's transaction: a
-- rollback queues nothing) and send an empty NOTIFY (delivered at commit) to wake the mirror, which
-- drains the outbox, reads the rows through the functions below and writes Redis. Anything missed
-- (the sidecar was down, Redis was down) is healed by reconciliation: range checksums computed here are
-- compared with the same checksums computed over Redis, and only ranges that differ are reloaded.
-- The sidecar connects as nexus_worker, which has no privilege on memory tables: these functions
-- are its only way in (SECURITY DEFINER), and they return exactly what the cache holds.

-- one working-memory row as the cache stores it, and its digest (the sidecar computes the same
-- digest over what it reads back from Redis: md5 of agent, key, value and expiry in ms, 0x1f-separated)
CREATE OR REPLACE FUNCTION memory_system._epoch_ms(p_ts timestamptz)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT floor(extract(epoch FROM p_ts) * 1000)::bigint $$;
COMMENT ON FUNCTION memory_system._epoch_ms(timestamptz) IS
'Internal: milliseconds since 1970 (NULL stays NULL), as the cache stores expiries.';

CREATE OR REPLACE FUNCTION memory_system._wm_digest(p_agent text, p_key text, p_value text, p_expires_ms bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT md5(p_agent || chr(31) || p_key || chr(31) || p_value || chr(31) || coalesce(p_expires_ms::text, ''))
$$;
COMMENT ON FUNCTION memory_system._wm_digest(text, text, text, bigint) IS
'Internal: the digest of a cached working-memory row: md5 of agent, key, value (JSON text) and expiry
(epoch ms, empty for none), separated by 0x1f. The sidecar computes the same over what Redis holds.';


-- is a mirror leading? (the advisory lock sidecar/cache.py takes: hashtext('nexus_cache_mirror'))
CREATE OR REPLACE FUNCTION memory_system._cache_mirror_leading()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_locks AS l, (SELECT hashtext('nexus_cache_mirror')::bigint AS k) AS lock
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = ((lock.k >> 32) & 4294967295)::oid
           AND l.objid = (lock.k & 4294967295)::oid)
$$;
COMMENT ON FUNCTION memory_system._cache_mirror_leading() IS
'Internal: true while a sidecar holds the cache mirror''s leader lock. Without one, changes are not
queued for it: a mirror that takes the lead reconciles Redis with PostgreSQL first.';


CREATE OR REPLACE FUNCTION memory_system._cache_notify_wm()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT memory_system._cache_mirror_leading() THEN
        RETURN NULL;
    END IF;
    INSERT INTO memory_system.cache_outbox (op, row_id)
    SELECT CASE TG_OP WHEN 'DELETE' THEN 'd' ELSE 'u' END, r.id FROM changed_rows AS r;
    -- an empty wake-up: channels are readable by any role, so nothing of an agent goes on one
    PERFORM pg_notify('nexus_cache', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._cache_notify_wm() IS
'Trigger (statement): queue the ids of changed working-memory rows in memory_system.cache_outbox
(u: upserted, d: deleted) and wake the mirror with an empty NOTIFY nexus_cache.';


CREATE OR REPLACE FUNCTION memory_system._cache_notify_episodes()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT memory_system._cache_mirror_leading() THEN
        RETURN NULL;
    END IF;
    INSERT INTO memory_system.cache_outbox (op, agent_id)
    SELECT DISTINCT 'r', r.agent_id FROM changed_rows AS r;
    PERFORM pg_notify('nexus_cache', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._cache_notify_episodes() IS
'Trigger (statement): queue the agents whose recent episodes changed (r) in
memory_system.cache_outbox and wake the mirror with an empty NOTIFY nexus_cache.';


CREATE OR REPLACE FUNCTION memory_system.cache_outbox_drain(p_limit integer DEFAULT 10000)
RETURNS TABLE (op text, row_id bigint, agent_id text)
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM memory_system.cache_outbox AS o
     WHERE o.seq IN (SELECT q.seq FROM memory_system.cache_outbox AS q
                      ORDER BY q.seq LIMIT greatest(p_limit, 1) FOR UPDATE SKIP LOCKED)
    RETURNING o.op, o.row_id, o.agent_id
$$;
COMMENT ON FUNCTION memory_system.cache_outbox_drain(integer) IS
'Sidecar (the Redis mirror): take up to p_limit queued changes, oldest first (u/d: a working-memory
row id, r: an agent whose recent episodes changed). Call it in a transaction and commit once Redis
has them: a rollback leaves them queued. Executable by nexus_worker only.';


CREATE OR REPLACE FUNCTION memory_system.cache_outbox_clear()
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM memory_system.cache_outbox RETURNING 1) SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION memory_system.cache_outbox_clear() IS
'Sidecar (the Redis mirror, on taking the lead, before it reconciles): forget what is queued; the
reconciliation that follows covers it. Returns the number of entries dropped.';


DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
            ('working_memory_contexts', 'memory_system._cache_notify_wm()'),
            ('zep_episodic_memory', 'memory_system._cache_notify_episodes()')) AS v(tbl, fn)
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER cache_notify_insert AFTER INSERT ON nexus_memory.%I '
                       'REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION %s',
                       t.tbl, t.fn);
        EXECUTE format('CREATE OR REPLACE TRIGGER cache_notify_update AFTER UPDATE ON nexus_memory.%I '
                       'REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION %s',
                       t.tbl, t.fn);
        EXECUTE format('CREATE OR REPLACE TRIGGER cache_notify_delete AFTER DELETE ON nexus_memory.%I '
                       'REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION %s',
                       t.tbl, t.fn);
    END LOOP;
END
$$;


-- what the sidecar reads ------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memory_system.cache_working_memory(p_ids bigint[])
RETURNS TABLE (id bigint, agent_id text, context_key text, value text, expires_ms bigint, digest text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.id, w.agent_id, w.context_key, w.value::text, memory_system._epoch_ms(w.expires_at),
           memory_system._wm_digest(w.agent_id, w.context_key, w.value::text,
                                    memory_system._epoch_ms(w.expires_at))
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.id = ANY (p_ids) AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
$$;
COMMENT ON FUNCTION memory_system.cache_working_memory(bigint[]) IS
'Sidecar: the live working-memory rows among p_ids, as the Redis cache stores them (value as JSON text).
An id not returned is deleted or expired: the cache drops it.';


CREATE OR REPLACE FUNCTION memory_system.cache_working_memory_range(p_lo bigint, p_hi bigint)
RETURNS TABLE (id bigint, agent_id text, context_key text, value text, expires_ms bigint, digest text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.id, w.agent_id, w.context_key, w.value::text, memory_system._epoch_ms(w.expires_at),
           memory_system._wm_digest(w.agent_id, w.context_key, w.value::text,
                                    memory_system._epoch_ms(w.expires_at))
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.id >= p_lo AND w.id < p_hi AND (w.expires_at IS NULL OR w.expires_at > clock_timestamp())
     ORDER BY w.id
$$;
COMMENT ON FUNCTION memory_system.cache_working_memory_range(bigint, bigint) IS
'Sidecar (reconciliation): the live working-memory rows with p_lo <= id < p_hi, in id order.';


CREATE OR REPLACE FUNCTION memory_system.cache_range_checksums(p_range_size integer DEFAULT 10000)
RETURNS TABLE (range_no bigint, rows bigint, checksum text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_range_size IS NULL OR p_range_size NOT BETWEEN 100 AND 1000000 THEN
        RAISE EXCEPTION 'range size must be between 100 and 1000000, got %', p_range_size
            USING ERRCODE = 'NX040';
    END IF;
    RETURN QUERY
    SELECT w.id / p_range_size, count(*),
           md5(string_agg(w.id::text || ':'
                          || memory_system._wm_digest(w.agent_id, w.context_key, w.value::text,
                                                      memory_system._epoch_ms(w.expires_at)),
                          ',' ORDER BY w.id))
      FROM nexus_memory.working_memory_contexts AS w
     WHERE w.expires_at IS NULL OR w.expires_at > clock_timestamp()
     GROUP BY 1
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION memory_system.cache_range_checksums(integer) IS
'Sidecar (reconciliation): per range of p_range_size ids (range_no = id / p_range_size) of live
working-memory rows, the row count and md5 of "id:digest" joined by "," in id order. Errors: NX040.';


CREATE OR REPLACE FUNCTION memory_system.cache_recent_episodes(p_agents text[], p_limit integer DEFAULT 50)
RETURNS TABLE (agent_id text, episodes text, digest text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.agent_id, r.doc, md5(r.doc)
      FROM unnest(p_agents) AS a(agent_id)
      CROSS JOIN LATERAL (
          -- NULL when the agent has no episode (or is gone): the mirror deletes its key
          SELECT (jsonb_agg(jsonb_build_object(
                     'id', e.id, 'created_at', e.created_at, 'session_id', e.session_id,
                     'action_type', e.action_type, 'content', e.content, 'tags', e.tags,
                     'metadata', e.metadata) ORDER BY e.created_at DESC, e.id DESC))::text AS doc
            FROM (SELECT * FROM nexus_memory.zep_episodic_memory AS x
                   WHERE x.agent_id = a.agent_id
                   ORDER BY x.created_at DESC, x.id DESC
                   LIMIT greatest(least(p_limit, 1000), 1)) AS e) AS r
$$;
COMMENT ON FUNCTION memory_system.cache_recent_episodes(text[], integer) IS
'Sidecar: each agent''s latest p_limit episodes (newest first) as the JSON array the cache stores, and its md5;
NULL and NULL for an agent with no episode (forgotten, or removed): the cache holds no key for it.';


CREATE OR REPLACE FUNCTION memory_system.cache_agents()
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT a.agent_id FROM memory_system.agents AS a ORDER BY 1 $$;
COMMENT ON FUNCTION memory_system.cache_agents() IS
'Sidecar (reconciliation): every registered agent, whose recent-episodes list the cache keeps.';
