-- Working memory: the calling agent's keys -> JSON values with an optional time to live (the agent
-- API), and the purge of expired keys the workers run.

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
or ttl not positive, NX015 key empty or over 256 characters, NX011 value over 256 KiB.

MCP: Keep a value under a key in your working memory (a scratchpad of keys and JSON values), replacing
what the key held, for good or for a while. Returns when it expires (null: never).
- key: The name to keep it under, 1 to 256 characters. Example: "current_task".
- value: Any JSON value up to 256 KiB, not null (to remove a key, use working_memory_delete).
  Example: {"goal": "chase ACME", "step": 2}.
- ttl: How long to keep it, a positive duration (default: until deleted). Example: "2 hours".';


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
'The value of a working-memory key of the calling agent, or NULL when it is absent or expired.

MCP: Read the value kept under a key in your working memory; null when there is none or it expired.
- key: The key, as given to working_memory_set. Example: "current_task".';


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
'Deletes a working-memory key of the calling agent; true if it existed and had not expired.

MCP: Remove a key from your working memory. Returns true if it was there, false if not (or expired).
- key: The key to remove. Example: "current_task".';


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
'The calling agent''s live working-memory keys (optionally those starting with prefix), in key order.

MCP: List the keys of your working memory, in key order, with when each expires and was last set.
- prefix: Only keys starting with this text (default: all keys). Example: "task_".';


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
