-- Retention by rule (docs/privacy.md, "Retention"): per agent (or space) and kind, memories older
-- than a rule's age, and less important than its importance_below if it has one, are removed by
-- the workers' heartbeat sweep (memory_system.retention_sweep, db/functions/retention/sweep.sql).
-- The functions here run with the caller's rights: row-level security keeps an agent to its own
-- rules; the operator (the owner) sets any agent's.

CREATE OR REPLACE FUNCTION memory_system._retention_check(p_kind text, p_older_than interval,
                                                          p_importance_below real)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('episode', 'semantic') THEN
        RAISE EXCEPTION 'retention kind must be episode or semantic, got %', coalesce(quote_literal(p_kind), 'NULL')
            USING ERRCODE = 'NX095';
    END IF;
    IF p_older_than IS NULL OR p_older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive age, got %', coalesce(p_older_than::text, 'NULL')
            USING ERRCODE = 'NX095', HINT = 'For example 180 days: ''180 days''.';
    END IF;
    IF p_importance_below IS NOT NULL AND NOT p_importance_below BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'importance_below must be between 0 and 1, got %', p_importance_below
            USING ERRCODE = 'NX095';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._retention_check(text, interval, real) IS
'Internal: checks a retention rule (kind episode or semantic, a positive older_than, importance_below
in 0..1 or NULL); NX095 otherwise.';


CREATE OR REPLACE FUNCTION memory_system._retention_matching(p_agent text, p_kind text, p_older_than interval,
                                                             p_importance_below real)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_kind
        WHEN 'episode' THEN
            (SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e
              WHERE e.agent_id = p_agent AND e.created_at < now() - p_older_than
                AND (p_importance_below IS NULL OR e.importance < p_importance_below))
        WHEN 'semantic' THEN
            (SELECT count(*) FROM nexus_memory.semantic_memories AS s
              WHERE s.agent_id = p_agent AND s.created_at < now() - p_older_than
                AND (p_importance_below IS NULL OR s.importance < p_importance_below))
    END
$$;
COMMENT ON FUNCTION memory_system._retention_matching(text, text, interval, real) IS
'Internal: how many memories of p_agent a rule (kind, older_than, importance_below) would take now
(rows the caller may see).';


CREATE OR REPLACE FUNCTION memory_system.retention_set(
    p_agent             text,
    p_kind              text,
    p_older_than        interval,
    p_importance_below  real DEFAULT NULL,
    p_dry_run           boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM memory_system._retention_check(p_kind, p_older_than, p_importance_below);
    -- row-level security shows an agent its own registry row only: another agent is unknown
    IF NOT EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_agent) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent), 'NULL') USING ERRCODE = 'NX096';
    END IF;
    IF NOT coalesce(p_dry_run, false) THEN
        INSERT INTO memory_system.retention_rules AS r (agent_id, kind, older_than, importance_below)
        VALUES (p_agent, p_kind, p_older_than, p_importance_below)
        ON CONFLICT (agent_id, kind) DO UPDATE
           SET older_than = EXCLUDED.older_than, importance_below = EXCLUDED.importance_below,
               set_by = session_user, updated_at = now();
    END IF;
    RETURN memory_system._retention_matching(p_agent, p_kind, p_older_than, p_importance_below);
END
$$;
COMMENT ON FUNCTION memory_system.retention_set(text, text, interval, real, boolean) IS
'Sets the retention rule of an agent (or space) for a kind (episode or semantic; one rule per kind,
replaced by the next): memories created more than p_older_than ago, and if p_importance_below is
given less important than it, are removed by the workers'' heartbeat sweep. Returns how many
memories the rule takes now; p_dry_run => true only counts them and stores nothing. Errors:
NX095 bad kind, age (not positive) or importance (outside 0..1); NX096 unknown agent. Callers: the
operator (nexus retention set), and agents for themselves (nexus.retention_set; row-level security).';


CREATE OR REPLACE FUNCTION memory_system.retention_remove(p_agent text, p_kind text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM memory_system.retention_rules AS r
         WHERE r.agent_id = p_agent AND r.kind = p_kind
        RETURNING 1)
    SELECT EXISTS (SELECT FROM gone)
$$;
COMMENT ON FUNCTION memory_system.retention_remove(text, text) IS
'Removes the retention rule of an agent for a kind; true if there was one. Memories already removed
stay removed. Callers: the operator (nexus retention remove), agents for themselves (row-level security).';


CREATE OR REPLACE FUNCTION memory_system.retention_list(p_agent text DEFAULT NULL)
RETURNS TABLE (agent_id text, kind text, older_than interval, importance_below real, set_by text,
               created_at timestamptz, updated_at timestamptz, removed bigint, last_swept_at timestamptz,
               matching bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.agent_id, r.kind, r.older_than, r.importance_below, r.set_by, r.created_at, r.updated_at,
           r.removed, r.last_swept_at,
           memory_system._retention_matching(r.agent_id, r.kind, r.older_than, r.importance_below)
      FROM memory_system.retention_rules AS r
     WHERE p_agent IS NULL OR r.agent_id = p_agent
     ORDER BY r.agent_id, r.kind
$$;
COMMENT ON FUNCTION memory_system.retention_list(text) IS
'The retention rules of an agent (NULL: of all, as far as the caller may see): each with who set
it, what the sweep removed under it and when it last ran, and matching: how many memories it would
take now. Callers: the operator (nexus retention list), agents (their own: row-level security).';


-- the agent's own rules ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION nexus.retention_set(kind text, older_than interval, importance_below real DEFAULT NULL,
                                               dry_run boolean DEFAULT false)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT memory_system.retention_set(current_user, kind, older_than, importance_below, dry_run)
$$;
COMMENT ON FUNCTION nexus.retention_set(text, interval, real, boolean) IS
'Sets the calling agent''s retention rule for a kind (episode or semantic; one per kind, replaced by
the next): its memories created more than older_than ago (and, if importance_below is given, less
important than it) are removed by the workers'' sweep, with their vectors, postings and queued work.
Returns how many the rule takes now; dry_run => true only counts them. Errors: NX095 bad kind, age
or importance. Any agent, for itself.';


CREATE OR REPLACE FUNCTION nexus.retention_remove(kind text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT memory_system.retention_remove(current_user, kind)
$$;
COMMENT ON FUNCTION nexus.retention_remove(text) IS
'Removes the calling agent''s retention rule for a kind; true if it had one. Any agent, for itself.';


CREATE OR REPLACE FUNCTION nexus.retention_rules()
RETURNS TABLE (kind text, older_than interval, importance_below real, set_by text, created_at timestamptz,
               updated_at timestamptz, removed bigint, last_swept_at timestamptz, matching bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.kind, r.older_than, r.importance_below, r.set_by, r.created_at, r.updated_at, r.removed,
           r.last_swept_at, r.matching
      FROM memory_system.retention_list(current_user) AS r
$$;
COMMENT ON FUNCTION nexus.retention_rules() IS
'The calling agent''s retention rules (set by itself or by the operator): each with who set it, how
many memories the sweep removed under it, when it last ran, and matching: how many it would take
now. Any agent.';
