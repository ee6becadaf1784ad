-- What an embedding worker (role nexus_worker) calls: claim, complete, fail, heartbeat, release.
-- SECURITY DEFINER: workers never read content or the queue table themselves.

CREATE OR REPLACE FUNCTION memory_system._check_worker(p_worker text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_worker IS NULL OR length(p_worker) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'worker id must be 1 to 200 characters' USING ERRCODE = 'NX020';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._check_worker(text) IS 'Raises NX020 for a missing or over-long worker id. Internal.';


CREATE OR REPLACE FUNCTION memory_system._requeue(p_ids bigint[], p_state text, p_error text,
                                                  p_retry_increment integer, p_delay interval)
RETURNS TABLE (item_id bigint, new_state text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Items leave 'processing' (or 'dead') for 'pending' -- unless newer work for the same source
    -- row is already pending (then this one is superseded: 'done'), or they have failed 5 times
    -- ('dead'). The caller holds row locks on p_ids.
    RETURN QUERY
    WITH items AS (
        SELECT q.id, q.source_table, q.source_id, q.retry_count + p_retry_increment AS retries,
               row_number() OVER (PARTITION BY q.source_table, q.source_id ORDER BY q.id DESC) AS rank
          FROM memory_system.embeddings_queue AS q
         WHERE q.id = ANY (p_ids) AND q.state = p_state
    ), decided AS (
        SELECT i.id, i.retries,
               CASE
                   WHEN i.retries >= 5 THEN 'dead'
                   WHEN i.rank > 1 OR EXISTS (
                        SELECT FROM memory_system.embeddings_queue AS p
                         WHERE p.state = 'pending' AND p.source_table = i.source_table
                           AND p.source_id = i.source_id) THEN 'done'
                   ELSE 'pending'
               END AS state
          FROM items AS i
    )
    UPDATE memory_system.embeddings_queue AS q
       SET state = d.state,
           retry_count = d.retries,
           last_error = CASE WHEN d.state = 'done' THEN 'superseded: newer content is queued'
                             ELSE coalesce(p_error, q.last_error) END,
           available_at = now() + CASE WHEN d.state = 'pending' THEN p_delay ELSE interval '0' END,
           processed_at = CASE WHEN d.state IN ('done', 'dead') THEN now() END,
           processed_by = CASE WHEN d.state IN ('done', 'dead') THEN q.lease_owner END,
           lease_owner = NULL,
           lease_expires_at = NULL
      FROM decided AS d
     WHERE q.id = d.id
    RETURNING q.id, q.state;
END
$$;
COMMENT ON FUNCTION memory_system._requeue(bigint[], text, text, integer, interval) IS
'Moves items back to pending (after p_delay), to dead after 5 failures, or to done when newer work
for the same row is already pending. Internal: used by fail, release, lease expiry and requeue.';


CREATE OR REPLACE FUNCTION memory_system.reap_expired_leases()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    SELECT array_agg(id) INTO v_ids
      FROM (SELECT id FROM memory_system.embeddings_queue
             WHERE state = 'processing' AND lease_expires_at < now()
             ORDER BY id
               FOR UPDATE SKIP LOCKED) AS expired;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    -- a lease that ran out counts as a failed try: a row that crashes its worker goes dead in the end
    PERFORM memory_system._requeue(v_ids, 'processing', 'lease expired: the worker stopped without finishing', 1, interval '0');
    RETURN cardinality(v_ids);
EXCEPTION WHEN unique_violation THEN
    -- newer work for the same row was enqueued concurrently: the next call will settle it
    RETURN 0;
END
$$;
COMMENT ON FUNCTION memory_system.reap_expired_leases() IS
'Returns items whose lease expired (a crashed or stuck worker) to pending, counting a failed try.
Called by every claim, so nothing a crashed worker held is lost. Returns the number reaped. Callers: workers, operators.';


CREATE OR REPLACE FUNCTION memory_system.claim_batch(
    p_worker text,
    p_limit integer DEFAULT 32,
    p_lease interval DEFAULT interval '5 minutes',
    p_model text DEFAULT NULL
)
RETURNS TABLE (item_id bigint, agent_id text, source_table text, source_id bigint,
               content text, content_sha256 bytea, model text, retry_count integer,
               enqueued_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'batch size must be 1 to 1000, got %', p_limit USING ERRCODE = 'NX020';
    END IF;
    IF p_lease IS NULL OR p_lease < interval '1 second' OR p_lease > interval '1 day' THEN
        RAISE EXCEPTION 'lease must be between 1 second and 1 day, got %', p_lease USING ERRCODE = 'NX020';
    END IF;
    PERFORM memory_system.reap_expired_leases();
    RETURN QUERY
    WITH claimed AS (
        UPDATE memory_system.embeddings_queue AS q
           SET state = 'processing', lease_owner = p_worker,
               lease_expires_at = now() + p_lease, claimed_at = now()
          FROM (SELECT c.id FROM memory_system.embeddings_queue AS c
                 WHERE c.state = 'pending' AND c.available_at <= now()
                   AND (p_model IS NULL OR c.model = p_model)
                 ORDER BY c.available_at, c.id
                 LIMIT p_limit
                   FOR UPDATE SKIP LOCKED) AS picked
         WHERE q.id = picked.id
        RETURNING q.id, q.agent_id, q.source_table, q.source_id, q.model, q.retry_count,
                  q.enqueued_at
    )
    SELECT c.id, c.agent_id, c.source_table, c.source_id, src.content, src.content_sha256,
           c.model, c.retry_count, c.enqueued_at
      FROM claimed AS c
      JOIN LATERAL (
            SELECT e.content, e.content_sha256 FROM nexus_memory.zep_episodic_memory AS e
             WHERE c.source_table = 'zep_episodic_memory' AND e.agent_id = c.agent_id AND e.id = c.source_id
            UNION ALL
            -- a keyed fact is embedded with its key, which names what it is about
            SELECT memory_system._fact_text(s.fact_key, s.content), s.content_sha256
              FROM nexus_memory.semantic_memories AS s
             WHERE c.source_table = 'semantic_memories' AND s.agent_id = c.agent_id AND s.id = c.source_id
            UNION ALL
            SELECT x.content, x.content_sha256 FROM nexus_memory.store_texts AS x
             WHERE c.source_table = 'store_texts' AND x.agent_id = c.agent_id AND x.id = c.source_id
      ) AS src ON true
     ORDER BY c.id;
END
$$;
COMMENT ON FUNCTION memory_system.claim_batch(text, integer, interval, text) IS
'Claims up to p_limit pending items (FOR UPDATE SKIP LOCKED: concurrent workers never get the same
item) under a lease of p_lease, first returning expired leases to pending. With p_model, only items
that target that model (a worker never writes vectors of another model). Returns each item with
the row''s current content and its checksum, to be passed back to complete_batch.
Errors: NX020 bad worker id, batch size (1-1000) or lease (1 s - 1 day). Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system._complete_batch_check_args(
    p_worker text,
    p_item_ids bigint[],
    p_embeddings public.vector[],
    p_content_sha256 bytea[],
    p_model text
)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dims integer := (SELECT value::integer FROM memory_system.settings WHERE name = 'embedding_dimensions');
    v_bad integer;
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    IF p_model IS NULL OR p_model = '' THEN
        RAISE EXCEPTION 'model name is required' USING ERRCODE = 'NX020';
    END IF;
    IF cardinality(p_item_ids) IS DISTINCT FROM cardinality(p_embeddings)
       OR cardinality(p_item_ids) IS DISTINCT FROM cardinality(p_content_sha256) THEN
        RAISE EXCEPTION 'item ids, embeddings and checksums must be arrays of the same length'
            USING ERRCODE = 'NX020';
    END IF;
    SELECT count(*) INTO v_bad FROM unnest(p_embeddings) AS v
     WHERE v IS NULL OR public.vector_dims(v) <> v_dims;
    IF v_bad > 0 THEN
        RAISE EXCEPTION '% embeddings are missing or not % dimensions', v_bad, v_dims
            USING ERRCODE = 'NX013';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._complete_batch_check_args(text, bigint[], public.vector[], bytea[], text) IS
'Internal: checks the arguments of memory_system.complete_batch. Errors: NX020 bad worker id, no
model, arrays of different lengths; NX013 an embedding missing or not of the configured dimension.
Called by complete_batch (as its owner).';


CREATE OR REPLACE FUNCTION memory_system.complete_batch(
    p_worker text,
    p_item_ids bigint[],
    p_embeddings public.vector[],
    p_content_sha256 bytea[],
    p_model text,
    p_model_version text DEFAULT ''
)
RETURNS TABLE (written integer, stale integer, lost integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM memory_system._complete_batch_check_args(p_worker, p_item_ids, p_embeddings, p_content_sha256, p_model);
    RETURN QUERY
    WITH input AS (
        SELECT i.item_id, i.embedding, i.sha
          FROM unnest(p_item_ids, p_embeddings, p_content_sha256) AS i (item_id, embedding, sha)
    ), held AS (
        -- only items this worker still holds (a lease that expired and moved on is not ours),
        -- and only vectors of the model the item asks for
        SELECT q.id, q.source_table, q.source_id, q.agent_id, i.embedding, i.sha
          FROM memory_system.embeddings_queue AS q
          JOIN input AS i ON i.item_id = q.id
         WHERE q.state = 'processing' AND q.lease_owner = p_worker AND q.model = p_model
           FOR UPDATE OF q
    ), locked_e AS (
        -- refuse a vector computed from content that has changed since: it is stale. The share
        -- lock holds off a concurrent content change until the vector is written (and if one
        -- committed meanwhile, the checksum is compared with the row's newest version).
        SELECT h.id, h.source_table, h.agent_id, h.source_id, h.embedding, h.sha
          FROM held AS h
          JOIN nexus_memory.zep_episodic_memory AS e
            ON e.agent_id = h.agent_id AND e.id = h.source_id AND e.content_sha256 = h.sha
         WHERE h.source_table = 'zep_episodic_memory'
           FOR SHARE OF e
    ), locked_s AS (
        SELECT h.id, h.source_table, h.agent_id, h.source_id, h.embedding, h.sha
          FROM held AS h
          JOIN nexus_memory.semantic_memories AS m
            ON m.agent_id = h.agent_id AND m.id = h.source_id AND m.content_sha256 = h.sha
         WHERE h.source_table = 'semantic_memories'
           FOR SHARE OF m
    ), locked_t AS (
        SELECT h.id, h.source_table, h.agent_id, h.source_id, h.embedding, h.sha
          FROM held AS h
          JOIN nexus_memory.store_texts AS t
            ON t.agent_id = h.agent_id AND t.id = h.source_id AND t.content_sha256 = h.sha
         WHERE h.source_table = 'store_texts'
           FOR SHARE OF t
    ), fresh AS (
        -- one vector per row even if a batch held two items of it: the newest item wins
        SELECT DISTINCT ON (l.source_table, l.agent_id, l.source_id) l.*
          FROM (SELECT * FROM locked_e UNION ALL SELECT * FROM locked_s UNION ALL SELECT * FROM locked_t) AS l
         ORDER BY l.source_table, l.agent_id, l.source_id, l.id DESC
    ), wrote_e AS (
        INSERT INTO nexus_memory.episode_embeddings AS x
               (agent_id, episode_id, model, model_version, content_sha256, embedding)
        SELECT f.agent_id, f.source_id, p_model, coalesce(p_model_version, ''), f.sha, f.embedding
          FROM fresh AS f WHERE f.source_table = 'zep_episodic_memory'
        ON CONFLICT (agent_id, episode_id) DO UPDATE
           SET model = EXCLUDED.model, model_version = EXCLUDED.model_version,
               content_sha256 = EXCLUDED.content_sha256, embedding = EXCLUDED.embedding,
               embedded_at = now()
        RETURNING x.agent_id, x.episode_id AS source_id, 'zep_episodic_memory'::text AS source_table
    ), wrote_s AS (
        INSERT INTO nexus_memory.semantic_memory_embeddings AS x
               (agent_id, memory_id, model, model_version, content_sha256, embedding)
        SELECT f.agent_id, f.source_id, p_model, coalesce(p_model_version, ''), f.sha, f.embedding
          FROM fresh AS f WHERE f.source_table = 'semantic_memories'
        ON CONFLICT (agent_id, memory_id) DO UPDATE
           SET model = EXCLUDED.model, model_version = EXCLUDED.model_version,
               content_sha256 = EXCLUDED.content_sha256, embedding = EXCLUDED.embedding,
               embedded_at = now()
        RETURNING x.agent_id, x.memory_id AS source_id, 'semantic_memories'::text AS source_table
    ), wrote_t AS (
        INSERT INTO nexus_memory.store_text_embeddings AS x
               (agent_id, text_id, model, model_version, content_sha256, embedding)
        SELECT f.agent_id, f.source_id, p_model, coalesce(p_model_version, ''), f.sha, f.embedding
          FROM fresh AS f WHERE f.source_table = 'store_texts'
        ON CONFLICT (agent_id, text_id) DO UPDATE
           SET model = EXCLUDED.model, model_version = EXCLUDED.model_version,
               content_sha256 = EXCLUDED.content_sha256, embedding = EXCLUDED.embedding,
               embedded_at = now()
        RETURNING x.agent_id, x.text_id AS source_id, 'store_texts'::text AS source_table
    ), wrote AS MATERIALIZED (
        -- materialized: joined once per held row below, it must not be recomputed each time
        SELECT f.id
          FROM fresh AS f
          JOIN (SELECT * FROM wrote_e UNION ALL SELECT * FROM wrote_s UNION ALL SELECT * FROM wrote_t) AS w
            ON w.source_table = f.source_table AND w.agent_id = f.agent_id AND w.source_id = f.source_id
    ), finished AS (
        UPDATE memory_system.embeddings_queue AS q
           SET state = 'done', processed_at = now(), processed_by = p_worker,
               lease_owner = NULL, lease_expires_at = NULL,
               last_error = CASE WHEN w.id IS NULL
                                 THEN 'stale: the content changed (or the row was deleted) before the result arrived'
                            END
          FROM held AS h
          LEFT JOIN wrote AS w ON w.id = h.id
         WHERE q.id = h.id
        RETURNING (w.id IS NOT NULL) AS ok
    )
    SELECT (count(*) FILTER (WHERE f.ok))::integer,
           (count(*) FILTER (WHERE NOT f.ok))::integer,
           (coalesce(cardinality(p_item_ids), 0) - count(*))::integer
      FROM finished AS f;
END
$$;
COMMENT ON FUNCTION memory_system.complete_batch(text, bigint[], public.vector[], bytea[], text, text) IS
'Writes the vectors of items this worker holds, with the model''s name and version, and marks them done. A vector whose checksum no
longer matches the row''s content is refused (counted stale; newer work is queued by the trigger).
Returns written, stale, and lost (items this worker no longer holds: lease expired and reclaimed;
or items that ask for another model than p_model: they are not written and wait for their lease).
Errors: NX020 bad arguments; NX013 an embedding missing or not of the configured dimension.
Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.fail_item(p_worker text, p_item_id bigint, p_error text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_retries integer;
    v_state text;
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    SELECT retry_count INTO v_retries FROM memory_system.embeddings_queue
     WHERE id = p_item_id AND state = 'processing' AND lease_owner = p_worker
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % is not held by worker %', p_item_id, p_worker
            USING ERRCODE = 'NX021', HINT = 'Its lease expired and it was reclaimed, or it was never claimed.';
    END IF;
    -- exponential backoff: 2, 4, 8, 16 s (then dead at the 5th failure)
    SELECT r.new_state INTO v_state
      FROM memory_system._requeue(ARRAY[p_item_id], 'processing',
                                  left(coalesce(p_error, 'unknown error'), 2000), 1,
                                  make_interval(secs => power(2, v_retries + 1))) AS r;
    RETURN v_state;
END
$$;
COMMENT ON FUNCTION memory_system.fail_item(text, bigint, text) IS
'Records a failed try of an item this worker holds: back to pending after an exponential backoff,
or dead after the 5th failure, the last error kept. Returns the new state.
Errors: NX020 bad worker id; NX021 the item is not held by this worker. Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.heartbeat(
    p_worker text,
    p_lease interval DEFAULT interval '5 minutes',
    p_info jsonb DEFAULT '{}'
)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_extended integer;
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    PERFORM memory_system._check_json_object('info', p_info, 65536);
    INSERT INTO memory_system.worker_heartbeats AS h (worker_id, info)
    VALUES (p_worker, coalesce(p_info, '{}'))
    ON CONFLICT (worker_id) DO UPDATE
       SET last_seen = now(), stopped_at = NULL, info = EXCLUDED.info;
    UPDATE memory_system.embeddings_queue
       SET lease_expires_at = now() + p_lease
     WHERE state = 'processing' AND lease_owner = p_worker;
    GET DIAGNOSTICS v_extended = ROW_COUNT;
    RETURN v_extended;
END
$$;
COMMENT ON FUNCTION memory_system.heartbeat(text, interval, jsonb) IS
'Records that a worker is alive and extends the leases of the items it holds by p_lease.
Returns the number of leases extended. Errors: NX020 bad worker id; NX012 info not an object.
Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.release(p_worker text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    SELECT array_agg(id) INTO v_ids
      FROM (SELECT id FROM memory_system.embeddings_queue
             WHERE state = 'processing' AND lease_owner = p_worker
             ORDER BY id FOR UPDATE) AS held;
    UPDATE memory_system.worker_heartbeats SET stopped_at = now(), last_seen = now()
     WHERE worker_id = p_worker;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    -- a clean shutdown is not a failure: no retry is counted
    PERFORM memory_system._requeue(v_ids, 'processing', NULL, 0, interval '0');
    RETURN cardinality(v_ids);
END
$$;
COMMENT ON FUNCTION memory_system.release(text) IS
'On shutdown: returns every item the worker holds to pending at once (no failure counted) and
marks the worker stopped. Returns the number released. Errors: NX020 bad worker id. Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.expire_leases(p_workers text[])
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_workers IS NULL OR cardinality(p_workers) > 1000 THEN
        RAISE EXCEPTION 'give between 0 and 1000 worker ids' USING ERRCODE = 'NX020';
    END IF;
    UPDATE memory_system.embeddings_queue
       SET lease_expires_at = now() - interval '1 microsecond'
     WHERE state = 'processing' AND lease_owner = ANY (p_workers);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    UPDATE memory_system.worker_heartbeats
       SET stopped_at = now(), info = info || '{"crashed": true}'
     WHERE worker_id = ANY (p_workers) AND stopped_at IS NULL;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION memory_system.expire_leases(text[]) IS
'For a worker known to be dead (its process is gone; the supervisor of `nexus worker` checks its
host''s at its start and whenever a replica dies): ends the leases of the items it held now rather
than when they run out, so the next claim reaps them, counting a failed try as an expired lease
does, and marks the workers stopped. Returns the number of leases ended. Errors: NX020 more than 1000 ids. Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.skip_batch(p_worker text, p_item_ids bigint[], p_reason text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM memory_system._check_worker(p_worker);
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'a reason is required' USING ERRCODE = 'NX020';
    END IF;
    WITH held AS (
        SELECT q.id, q.source_table, q.agent_id, q.source_id
          FROM memory_system.embeddings_queue AS q
         WHERE q.id = ANY (p_item_ids) AND q.state = 'processing' AND q.lease_owner = p_worker
           FOR UPDATE
    ), drop_e AS (
        -- a vector of older content would be stale: the row now has none
        DELETE FROM nexus_memory.episode_embeddings AS x USING held AS h
         WHERE h.source_table = 'zep_episodic_memory' AND x.agent_id = h.agent_id
           AND x.episode_id = h.source_id
    ), drop_s AS (
        DELETE FROM nexus_memory.semantic_memory_embeddings AS x USING held AS h
         WHERE h.source_table = 'semantic_memories' AND x.agent_id = h.agent_id
           AND x.memory_id = h.source_id
    ), drop_t AS (
        DELETE FROM nexus_memory.store_text_embeddings AS x USING held AS h
         WHERE h.source_table = 'store_texts' AND x.agent_id = h.agent_id
           AND x.text_id = h.source_id
    )
    UPDATE memory_system.embeddings_queue AS q
       SET state = 'done', processed_at = now(), processed_by = p_worker,
           lease_owner = NULL, lease_expires_at = NULL,
           last_error = 'no vector: ' || left(p_reason, 1000)
      FROM held AS h
     WHERE q.id = h.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION memory_system.skip_batch(text, bigint[], text) IS
'Closes items that deliberately get no vector (empty or whitespace-only content): done, with
last_error ''no vector: <reason>'' recorded, and any older vector of the row removed. Returns the
number closed. Errors: NX020 bad worker id or no reason. Callers: nexus_worker.';


CREATE OR REPLACE FUNCTION memory_system.schema_migration()
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT max(m.migration_id) FROM nexus_migrations._yoyo_migration AS m
$$;
COMMENT ON FUNCTION memory_system.schema_migration() IS
'The newest migration applied to this database (e.g. 0024_facts_in_spaces). A worker starts only if it
is the one its release was built for (sidecar/db.py SCHEMA): an older runtime must not run against a
newer schema, nor a newer one against an older. SECURITY DEFINER: workers do not read the migration
table. Callers: workers, at start.';
