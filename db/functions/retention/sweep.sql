-- The retention sweep, run by the embedding workers at each heartbeat (sidecar/worker.py), as the
-- sweeps of expired working memory and store items are: bounded batches, never one giant delete.

CREATE OR REPLACE FUNCTION memory_system.retention_sweep(p_limit integer DEFAULT 2000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := now();
    v_left   integer := greatest(coalesce(p_limit, 0), 0);
    v_total  integer := 0;
    v_n      integer;
    v_rule   record;
BEGIN
    -- the rules least recently swept first, 100 at most per sweep (each visit is a probe of the
    -- agent's index and an update of the rule); a rule another worker is sweeping is skipped
    FOR v_rule IN
        SELECT r.agent_id, r.kind, r.older_than, r.importance_below
          FROM memory_system.retention_rules AS r
         ORDER BY r.last_swept_at NULLS FIRST, r.agent_id, r.kind
         LIMIT 100
           FOR UPDATE SKIP LOCKED
    LOOP
        EXIT WHEN v_left <= 0;
        -- the oldest first; rows locked by a writer are left for the next sweep. Deleting a row
        -- deletes its vector (foreign key), postings, queue items and Redis mirror entries
        -- (triggers), as any delete does
        IF v_rule.kind = 'episode' THEN
            WITH gone AS (
                DELETE FROM nexus_memory.zep_episodic_memory AS e
                 WHERE (e.agent_id, e.id) IN (
                       SELECT x.agent_id, x.id FROM nexus_memory.zep_episodic_memory AS x
                        WHERE x.agent_id = v_rule.agent_id AND x.created_at < v_now - v_rule.older_than
                          AND (v_rule.importance_below IS NULL OR x.importance < v_rule.importance_below)
                        ORDER BY x.created_at LIMIT v_left
                          FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT count(*) INTO v_n FROM gone;
        ELSE
            WITH gone AS (
                DELETE FROM nexus_memory.semantic_memories AS s
                 WHERE (s.agent_id, s.id) IN (
                       SELECT x.agent_id, x.id FROM nexus_memory.semantic_memories AS x
                        WHERE x.agent_id = v_rule.agent_id AND x.created_at < v_now - v_rule.older_than
                          AND (v_rule.importance_below IS NULL OR x.importance < v_rule.importance_below)
                        ORDER BY x.created_at LIMIT v_left
                          FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT count(*) INTO v_n FROM gone;
        END IF;
        UPDATE memory_system.retention_rules AS r
           SET removed = r.removed + v_n, last_swept_at = v_now
         WHERE r.agent_id = v_rule.agent_id AND r.kind = v_rule.kind;
        v_total := v_total + v_n;
        v_left := v_left - v_n;
    END LOOP;
    -- the read record's days: made ahead, and dropped once past their retention
    PERFORM memory_system._reads_maintain();
    RETURN v_total;
END
$$;
COMMENT ON FUNCTION memory_system.retention_sweep(integer) IS
'Applies the retention rules: deletes up to p_limit memories (default 2,000, all rules together) that
a rule takes, the oldest first, with their vectors, postings, queue items and Redis mirror entries;
returns how many (each rule counts its own in retention_rules.removed). Rules are taken least
recently swept first, at most 100 per call, and skipped while another worker sweeps them; rows
locked by a writer wait for the next sweep. Then keeps the read record''s day partitions (memory_system._reads_maintain).
Run by the embedding workers at each heartbeat. Callers: nexus_worker, operators.';
