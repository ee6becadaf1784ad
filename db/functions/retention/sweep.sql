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
        EXECUTE format($q$
            WITH gone AS (
                DELETE FROM nexus_memory.%1$I AS m
                 WHERE (m.agent_id, m.id) IN (
                       SELECT x.agent_id, x.id FROM nexus_memory.%1$I AS x
                        WHERE x.agent_id = $1 AND x.created_at < $2
                          AND ($3 IS NULL OR x.importance < $3)
                        ORDER BY x.created_at LIMIT $4
                          FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT count(*) FROM gone$q$,
            CASE v_rule.kind WHEN 'episode' THEN 'zep_episodic_memory' ELSE 'semantic_memories' END)
          INTO v_n
         USING v_rule.agent_id, v_now - v_rule.older_than, v_rule.importance_below, v_left;
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
