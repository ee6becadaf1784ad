-- Operator functions for the embedding queue (the owner, or roles it grants them to).

CREATE OR REPLACE FUNCTION memory_system.requeue_dead(p_item_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
DECLARE
    v_ids bigint[];
    v_pending integer;
BEGIN
    SELECT array_agg(id) INTO v_ids
      FROM (SELECT id FROM memory_system.embeddings_queue
             WHERE state = 'dead' AND (p_item_ids IS NULL OR id = ANY (p_item_ids))
             ORDER BY id FOR UPDATE) AS dead;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    -- a fresh start: the retry count goes back to zero, the last error stays for the record
    UPDATE memory_system.embeddings_queue SET retry_count = 0 WHERE id = ANY (v_ids);
    SELECT count(*) INTO v_pending
      FROM memory_system._requeue(v_ids, 'dead', NULL, 0, interval '0') AS r
     WHERE r.new_state = 'pending';
    PERFORM pg_notify('nexus_embeddings', '');
    RETURN v_pending;
END
$$;
COMMENT ON FUNCTION memory_system.requeue_dead(bigint[]) IS
'Puts dead items (all, or those listed) back to pending with a fresh retry count. An item whose row
already has newer pending work is closed as superseded instead. Returns the number re-queued.
Callers: operators.';


CREATE OR REPLACE FUNCTION memory_system.queue_stats()
RETURNS TABLE (pending bigint, processing bigint, done bigint, dead bigint,
               oldest_pending_age interval, done_last_minute bigint, done_last_hour bigint,
               live_workers bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
AS $$
    SELECT count(*) FILTER (WHERE state = 'pending'),
           count(*) FILTER (WHERE state = 'processing'),
           count(*) FILTER (WHERE state = 'done'),
           count(*) FILTER (WHERE state = 'dead'),
           now() - min(enqueued_at) FILTER (WHERE state = 'pending'),
           count(*) FILTER (WHERE state = 'done' AND processed_at > now() - interval '1 minute'),
           count(*) FILTER (WHERE state = 'done' AND processed_at > now() - interval '1 hour'),
           (SELECT count(*) FROM memory_system.worker_heartbeats
             WHERE stopped_at IS NULL AND last_seen > now() - interval '1 minute')
      FROM memory_system.embeddings_queue
$$;
COMMENT ON FUNCTION memory_system.queue_stats() IS
'Queue depth per state, age of the oldest pending item, items done in the last minute and hour
(throughput), and workers with a heartbeat in the last minute. Callers: operators, nexus_worker
(the sidecar''s /metrics and /health), nexus_ro.';


CREATE OR REPLACE FUNCTION memory_system.reembed_all(p_model text, p_model_version text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_model IS NULL OR btrim(p_model) = '' THEN
        RAISE EXCEPTION 'model name is required' USING ERRCODE = 'NX020';
    END IF;
    IF p_model_version IS NOT NULL AND btrim(p_model_version) = '' THEN
        RAISE EXCEPTION 'model version must not be empty (NULL: any version)' USING ERRCODE = 'NX020';
    END IF;
    UPDATE memory_system.settings SET value = p_model, updated_at = now()
     WHERE name = 'embedding_model';
    -- every row not embedded by p_model (or, with a version, by that version of it: another
    -- precision) gets (or keeps, retargeted) one pending item
    INSERT INTO memory_system.embeddings_queue AS q (agent_id, source_table, source_id, content_sha256, model)
    SELECT m.agent_id, m.source_table, m.id, m.content_sha256, p_model
      FROM (SELECT 'zep_episodic_memory' AS source_table, e.agent_id, e.id, e.content_sha256
              FROM nexus_memory.zep_episodic_memory AS e
            UNION ALL
            SELECT 'semantic_memories', s.agent_id, s.id, s.content_sha256
              FROM nexus_memory.semantic_memories AS s
            UNION ALL
            SELECT 'store_texts', t.agent_id, t.id, t.content_sha256
              FROM nexus_memory.store_texts AS t) AS m
     CROSS JOIN LATERAL (SELECT memory_system._embedded_version(
                             m.source_table, m.agent_id, m.id, m.content_sha256, p_model) AS version) AS v
     WHERE v.version IS NULL OR v.version <> p_model_version
    ON CONFLICT (source_table, source_id) WHERE state = 'pending'
    DO UPDATE SET model = EXCLUDED.model, content_sha256 = EXCLUDED.content_sha256;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM pg_notify('nexus_embeddings', '');
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION memory_system.reembed_all(text, text) IS
'Switches the embedding model (memory_system.settings) and queues every row not yet embedded by it.
With p_model_version, also the rows whose vector is of another version of it: a database holding
vectors of two precisions (versions ''... 0.1.0'' and ''... 0.1.0+bf16'', see nexus.memory_stats)
is unified by running this with the version of the workers'' precision (NEXUS_EMBED_DTYPE); workers
of another precision would write theirs again. Old vectors stay searchable until replaced.
Returns the number of rows queued. Errors: NX020 no model name, or an empty version. Callers: operators.';


CREATE OR REPLACE FUNCTION memory_system.prune_done(p_older_than interval DEFAULT interval '7 days')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION 'retention must be a non-negative interval' USING ERRCODE = 'NX020';
    END IF;
    DELETE FROM memory_system.embeddings_queue
     WHERE state = 'done' AND processed_at < now() - p_older_than;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION memory_system.prune_done(interval) IS
'Deletes done items finished more than p_older_than ago (default 7 days), keeping the queue lean.
Dead items are kept until re-queued. Returns the number deleted. Errors: NX020. Callers: operators, workers.';


CREATE OR REPLACE FUNCTION memory_system.embedding_report(p_stuck_after interval DEFAULT interval '10 minutes')
RETURNS TABLE (episodes bigint, embedded bigint, dead bigint, expired_leases bigint,
               stuck_pending bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
AS $$
    SELECT e.total, e.embedded, q.dead, q.expired, q.stuck
      FROM (SELECT count(*) AS total,
                   -- content with nothing but whitespace (refused since 0.1: NX015; older rows may
                   -- hold it) needs no vector
                   count(*) FILTER (WHERE x.episode_id IS NOT NULL
                                       OR m.content !~ '[^[:space:]]') AS embedded
              FROM nexus_memory.zep_episodic_memory AS m
              LEFT JOIN nexus_memory.episode_embeddings AS x
                ON x.agent_id = m.agent_id AND x.episode_id = m.id
               AND x.content_sha256 = m.content_sha256) AS e,
           (SELECT count(*) FILTER (WHERE state = 'dead') AS dead,
                   count(*) FILTER (WHERE state = 'processing' AND lease_expires_at < now()) AS expired,
                   count(*) FILTER (WHERE state = 'pending' AND enqueued_at < now() - p_stuck_after) AS stuck
              FROM memory_system.embeddings_queue) AS q
$$;
COMMENT ON FUNCTION memory_system.embedding_report(interval) IS
'For nexus doctor: episodes, those with a vector of their current content (or needing none), dead
items, items whose lease expired, and items pending longer than p_stuck_after. Callers: operators.';
