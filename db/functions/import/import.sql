-- Imports (nexus import legacy | jsonl): staged rows become memories in set-based batches, each
-- recorded in memory_system.import_rows with its source identity. Owner only: no role but the
-- owner may call these (db/grants.sql grants nothing here).
--
-- The importer COPYs source rows as text into session staging tables (memory_system.import_stage),
-- then calls import_batch for ranges of their row numbers. Every conversion and check happens here,
-- through the same validation triggers as any other write: a range that fails is retried row by
-- row, and the rows that still fail are recorded in import_rejects with their error.

CREATE OR REPLACE FUNCTION memory_system.import_stage()
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    -- all text: any source type arrives through COPY unchanged, and converts (or is rejected) here
    CREATE TEMP TABLE IF NOT EXISTS nexus_import_episode (
        n bigint GENERATED ALWAYS AS IDENTITY, source_ref text, agent_id text, episode_uuid text,
        session_id text, action_type text, source text, content text, metadata text, tags text,
        importance text, valid_at text, created_at text, updated_at text, author text);
    -- a fact's identity, key, valid time and what ended it (superseded_by: the successor's uuid)
    CREATE TEMP TABLE IF NOT EXISTS nexus_import_semantic (
        n bigint GENERATED ALWAYS AS IDENTITY, source_ref text, agent_id text, content text,
        metadata text, tags text, importance text, source_episode_uuid text, created_at text,
        updated_at text, fact_uuid text, fact_key text, valid_from text, valid_to text,
        ended_by text, ended_at text, superseded_by_uuid text, author text);
    CREATE TEMP TABLE IF NOT EXISTS nexus_import_working_memory (
        n bigint GENERATED ALWAYS AS IDENTITY, source_ref text, agent_id text, context_key text,
        value text, expires_at text, created_at text, updated_at text,
        -- when two sources hold the same key, the higher priority wins (Redis over the table)
        priority integer NOT NULL DEFAULT 0);
    CREATE TEMP TABLE IF NOT EXISTS nexus_import_checkpoint (
        n bigint GENERATED ALWAYS AS IDENTITY, source_ref text, agent_id text,
        checkpoint_name text, state text, metadata text, created_at text);
    -- what validation reads back from the source: identity and checksum of each row
    CREATE TEMP TABLE IF NOT EXISTS nexus_import_check (
        kind text, agent_id text, source_ref text, sha256 bytea,
        -- sha256 of the source's metadata text: compared with what an adapted row kept
        meta_sha256 bytea);
    TRUNCATE nexus_import_episode, nexus_import_semantic, nexus_import_working_memory,
             nexus_import_checkpoint, nexus_import_check;
END
$$;
COMMENT ON FUNCTION memory_system.import_stage() IS
'Creates (or empties) this session''s import staging tables: pg_temp.nexus_import_{episode,semantic,
working_memory,checkpoint} (text columns, filled by COPY) and nexus_import_check (source checksums,
and of the source metadata for validating adapted rows).';

-- the checksums of staged rows, for sources validation cannot read back (JSONL, Redis)
CREATE OR REPLACE FUNCTION memory_system.import_check_staged(p_kinds text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    bad  text;
    k    text;
    expr text;
BEGIN
    SELECT x INTO bad FROM unnest(p_kinds) AS x
     WHERE x IS NULL OR x NOT IN ('episode', 'semantic', 'working_memory', 'checkpoint') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown import kind %', coalesce(quote_literal(bad), 'NULL')
            USING ERRCODE = 'NX050';
    END IF;
    -- per kind, the checksum of a staged row: content as UTF-8, JSON in its canonical text; and
    -- for a fact with its validity (format version 2: it has a uuid), the checksum of that
    FOR k, expr IN VALUES
        ('episode', $e$sha256(convert_to(content, 'UTF8')), NULL$e$),
        ('semantic', $e$sha256(convert_to(content, 'UTF8')),
                      CASE WHEN fact_uuid IS NOT NULL THEN memory_system._fact_validity_sha256(
                          fact_key, valid_from::timestamptz, valid_to::timestamptz, ended_by) END$e$),
        ('working_memory', 'memory_system._json_sha256(memory_system._import_json(value)), NULL'),
        ('checkpoint', 'memory_system._json_sha256(memory_system._import_json(state)), NULL')
    LOOP
        IF k = ANY (p_kinds) THEN
            EXECUTE format('INSERT INTO pg_temp.nexus_import_check SELECT %L, agent_id, source_ref, %s FROM pg_temp.%I',
                           k, expr, 'nexus_import_' || k);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION memory_system.import_check_staged(text[]) IS
'Adds the checksums of this session''s staged rows of the given kinds (episode, semantic,
working_memory, checkpoint) to pg_temp.nexus_import_check (a fact with its validity: its checksum
as meta_sha256): for sources that validation cannot
read again (JSONL files, Redis). Content as UTF-8, JSON values in their canonical text. NX050 for
an unknown kind.';

-- JSON text as the importer received it: JSON stays JSON, anything else becomes a JSON string
CREATE OR REPLACE FUNCTION memory_system._import_json(p_text text)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    -- plpgsql, not a CASE in SQL: the planner may fold a cast of a constant before the test
    IF p_text IS NULL THEN
        RETURN NULL;
    ELSIF pg_input_is_valid(p_text, 'jsonb') THEN
        RETURN p_text::jsonb;
    END IF;
    RETURN to_jsonb(p_text);
END
$$;
COMMENT ON FUNCTION memory_system._import_json(text) IS
'Imported text to jsonb: valid JSON as is, any other text as a JSON string. Internal.';

-- whether imported text is a JSON object (what the metadata columns accept)
CREATE OR REPLACE FUNCTION memory_system._import_is_object(p_text text)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    RETURN pg_input_is_valid(p_text, 'jsonb') AND jsonb_typeof(p_text::jsonb) = 'object';
END
$$;
COMMENT ON FUNCTION memory_system._import_is_object(text) IS
'Whether imported text is a JSON object (NULL for NULL). Internal.';

-- what an import may adapt (memory_system.imports.adapt), for the row functions
CREATE OR REPLACE FUNCTION memory_system._import_adapts_metadata(p_import_id bigint)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$ SELECT coalesce((SELECT (adapt ->> 'metadata')::boolean FROM memory_system.imports
                         WHERE import_id = p_import_id), false) $$;
COMMENT ON FUNCTION memory_system._import_adapts_metadata(bigint) IS
'Whether an import keeps metadata that is not a JSON object under {"legacy_metadata": text}. Internal.';

-- the checksum of a value as stored: sha256 of the jsonb's text (its canonical form)
CREATE OR REPLACE FUNCTION memory_system._json_sha256(p_value jsonb)
RETURNS bytea
LANGUAGE sql
IMMUTABLE
AS $$ SELECT sha256(convert_to(p_value::text, 'UTF8')) $$;
COMMENT ON FUNCTION memory_system._json_sha256(jsonb) IS
'sha256 of a JSON value''s canonical text: the checksum imports compare for JSON rows. Internal.';

-- tags arrive as a PostgreSQL array literal or a JSON array
CREATE OR REPLACE FUNCTION memory_system._import_tags(p_text text)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_text IS NULL OR p_text = '' THEN
        RETURN '{}';
    ELSIF left(ltrim(p_text), 1) = '[' THEN
        RETURN ARRAY(SELECT jsonb_array_elements_text(p_text::jsonb));
    END IF;
    RETURN p_text::text[];
END
$$;
COMMENT ON FUNCTION memory_system._import_tags(text) IS
'Imported tags (array literal or JSON array) to text[]. Internal.';


-- one kind, one range of staged rows, set-based; returns the rows written ----------------------
CREATE OR REPLACE FUNCTION memory_system._import_episode_rows(p_import_id bigint, p_lo bigint, p_hi bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
    v_meta boolean := memory_system._import_adapts_metadata(p_import_id);
    v_max_content text := (SELECT adapt ->> 'max_content_bytes' FROM memory_system.imports
                            WHERE import_id = p_import_id);
BEGIN
    -- content over the API's limit, up to the import's own limit: the validation trigger reads
    -- this (for the tables' owner only), until the end of the transaction
    IF v_max_content IS NOT NULL THEN
        PERFORM set_config('nexus.import_max_content_bytes', v_max_content, true);
    END IF;
    WITH src AS MATERIALIZED (
        SELECT s.*, coalesce(s.episode_uuid::uuid, gen_random_uuid()) AS uuid,
               v_meta AND s.metadata IS NOT NULL AND NOT memory_system._import_is_object(s.metadata)
                   AS meta_adapted
          FROM pg_temp.nexus_import_episode AS s
         WHERE s.n BETWEEN p_lo AND p_hi
           AND NOT EXISTS (SELECT FROM memory_system.import_rows AS r
                            WHERE r.kind = 'episode' AND r.agent_id = s.agent_id
                              AND r.source_ref = s.source_ref)),
    ins AS (
        INSERT INTO nexus_memory.zep_episodic_memory
               (agent_id, episode_uuid, session_id, action_type, source, content, metadata, tags,
                importance, valid_at, created_at, updated_at, author)
        SELECT s.agent_id, s.uuid, s.session_id, coalesce(s.action_type, 'observation'),
               coalesce(s.source, 'text'), s.content,
               CASE WHEN s.meta_adapted THEN jsonb_build_object('legacy_metadata', s.metadata)
                    ELSE coalesce(memory_system._import_json(s.metadata), '{}') END,
               memory_system._import_tags(s.tags), coalesce(s.importance::real, 0.5),
               s.valid_at::timestamptz, coalesce(s.created_at::timestamptz, s.updated_at::timestamptz, now()),
               coalesce(s.updated_at::timestamptz, s.created_at::timestamptz, now()), s.author
          FROM src AS s
        ON CONFLICT (agent_id, episode_uuid) DO NOTHING
        RETURNING agent_id, episode_uuid, id, content_sha256)
    -- an episode already there with the same uuid (an export imported back) is adopted, not copied
    INSERT INTO memory_system.import_rows
           (import_id, kind, agent_id, source_ref, target_id, source_sha256, adopted, adapted)
    SELECT p_import_id, 'episode', s.agent_id, s.source_ref, coalesce(i.id, e.id),
           coalesce(i.content_sha256, sha256(convert_to(s.content, 'UTF8'))), i.id IS NULL,
           nullif(array_remove(ARRAY[CASE WHEN s.meta_adapted THEN 'metadata' END,
                                     CASE WHEN octet_length(s.content) > 262144 THEN 'oversize' END],
                               NULL), '{}')
      FROM src AS s
      LEFT JOIN ins AS i ON i.agent_id = s.agent_id AND i.episode_uuid = s.uuid
      LEFT JOIN nexus_memory.zep_episodic_memory AS e
        ON i.id IS NULL AND e.agent_id = s.agent_id AND e.episode_uuid = s.uuid
     WHERE i.id IS NOT NULL OR e.id IS NOT NULL;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system._import_episode_rows(bigint, bigint, bigint) IS
'Writes staged episodes (an episode already there with the same uuid is adopted) of rows p_lo..p_hi and records them in the ledger; returns how many. What the import''s adapt options allow is adapted and recorded (import_rows.adapted): metadata that is not a JSON object kept as {"legacy_metadata": text}; content over 256 KiB kept whole up to max_content_bytes. Internal: called by import_batch.';

CREATE OR REPLACE FUNCTION memory_system._import_semantic_rows(p_import_id bigint, p_lo bigint, p_hi bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
BEGIN
    -- a fact already there is adopted as it is: the same uuid, or for a file without uuids
    -- (export version 1) the same content, unkeyed and not ended
    WITH src AS MATERIALIZED (
        SELECT s.*, sha256(convert_to(s.content, 'UTF8')) AS sha,
               coalesce(s.fact_uuid::uuid, gen_random_uuid()) AS uuid,
               -- cast here, so that a malformed successor rejects its row (import_link_facts links)
               s.superseded_by_uuid::uuid AS successor
          FROM pg_temp.nexus_import_semantic AS s
         WHERE s.n BETWEEN p_lo AND p_hi
           AND NOT EXISTS (SELECT FROM memory_system.import_rows AS r
                            WHERE r.kind = 'semantic' AND r.agent_id = s.agent_id
                              AND r.source_ref = s.source_ref)),
    found AS (
        SELECT s.n,
               CASE WHEN s.fact_uuid IS NOT NULL THEN
                        (SELECT m.id FROM nexus_memory.semantic_memories AS m
                          WHERE m.agent_id = s.agent_id AND m.fact_uuid = s.uuid)
                    ELSE (SELECT m.id FROM nexus_memory.semantic_memories AS m
                           WHERE m.agent_id = s.agent_id AND m.fact_key IS NULL AND m.valid_to IS NULL
                             AND m.content_norm_sha256 = memory_system._fact_text_sha256(s.content)
                             AND m.content_sha256 = s.sha
                           ORDER BY m.id LIMIT 1) END AS id
          FROM src AS s),
    ins AS (
        INSERT INTO nexus_memory.semantic_memories
               (agent_id, fact_uuid, content, metadata, tags, importance, source_episode_id, created_at,
                updated_at, fact_key, valid_from, valid_to, ended_by, ended_at, author)
        SELECT s.agent_id, s.uuid, s.content, coalesce(memory_system._import_json(s.metadata), '{}'),
               memory_system._import_tags(s.tags), coalesce(s.importance::real, 0.5),
               (SELECT e.id FROM nexus_memory.zep_episodic_memory AS e
                 WHERE e.agent_id = s.agent_id AND e.episode_uuid = s.source_episode_uuid::uuid),
               coalesce(s.created_at::timestamptz, s.updated_at::timestamptz, now()),
               coalesce(s.updated_at::timestamptz, s.created_at::timestamptz, now()),
               s.fact_key, coalesce(s.valid_from::timestamptz, s.created_at::timestamptz,
                                    s.updated_at::timestamptz, now()),
               s.valid_to::timestamptz, s.ended_by, s.ended_at::timestamptz, s.author
          FROM src AS s JOIN found AS f ON f.n = s.n AND f.id IS NULL
        ON CONFLICT (agent_id, fact_uuid) DO NOTHING
        RETURNING agent_id, id, fact_uuid)
    INSERT INTO memory_system.import_rows
           (import_id, kind, agent_id, source_ref, target_id, source_sha256, adopted)
    SELECT p_import_id, 'semantic', s.agent_id, s.source_ref, coalesce(i.id, f.id), s.sha, i.id IS NULL
      FROM src AS s
      JOIN found AS f ON f.n = s.n
      LEFT JOIN ins AS i ON i.agent_id = s.agent_id AND i.fact_uuid = s.uuid
     WHERE i.id IS NOT NULL OR f.id IS NOT NULL;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system._import_semantic_rows(bigint, bigint, bigint) IS
'Writes staged facts of rows p_lo..p_hi with their uuid, key, valid time and end, and records them in
the ledger; returns how many. A fact already there is adopted: the same uuid, or (a file without
uuids) the same content, unkeyed and not ended. A fact that would overlap one of its key that holds
is rejected (23P01). Links to successors are made by import_link_facts once every fact is in.
Internal: called by import_batch.';

-- chains: once every staged fact is in, an ended fact points at the fact that superseded it
CREATE OR REPLACE FUNCTION memory_system.import_link_facts()
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
BEGIN
    UPDATE nexus_memory.semantic_memories AS m SET superseded_by = n.id
      FROM pg_temp.nexus_import_semantic AS s
      JOIN nexus_memory.semantic_memories AS n
        ON n.agent_id = s.agent_id AND n.fact_uuid = s.superseded_by_uuid::uuid
     WHERE pg_input_is_valid(s.fact_uuid, 'uuid') AND pg_input_is_valid(s.superseded_by_uuid, 'uuid')
       AND m.agent_id = s.agent_id AND m.fact_uuid = s.fact_uuid::uuid
       AND m.ended_by = 'superseded' AND m.superseded_by IS NULL AND m.id <> n.id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system.import_link_facts() IS
'Links each staged fact ended by supersession (and still without a link) to the fact its source
names as its successor (by uuid), once both are in; returns how many links it made. Run after the
facts of an import are written, and again by a re-run: it only fills links that are missing.';

CREATE OR REPLACE FUNCTION memory_system._import_working_memory_rows(p_import_id bigint, p_lo bigint, p_hi bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
BEGIN
    -- a key the agent already has is replaced; the row replaced is kept in the ledger for rollback
    WITH src AS MATERIALIZED (
        SELECT s.*, memory_system._import_json(s.value) AS v
          FROM pg_temp.nexus_import_working_memory AS s
         WHERE s.n BETWEEN p_lo AND p_hi
           AND NOT EXISTS (SELECT FROM memory_system.import_rows AS r
                            WHERE r.kind = 'working_memory' AND r.agent_id = s.agent_id
                              AND r.source_ref = s.source_ref)),
    prior AS (
        SELECT w.* FROM nexus_memory.working_memory_contexts AS w
          JOIN src AS s ON s.agent_id = w.agent_id AND s.context_key = w.context_key),
    up AS (
        INSERT INTO nexus_memory.working_memory_contexts AS w
               (agent_id, context_key, value, expires_at, created_at, updated_at)
        SELECT s.agent_id, s.context_key, s.v, s.expires_at::timestamptz,
               coalesce(s.created_at::timestamptz, s.updated_at::timestamptz, now()),
               coalesce(s.updated_at::timestamptz, s.created_at::timestamptz, now())
          FROM src AS s
        ON CONFLICT (agent_id, context_key)
        DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
            -- a key that already holds this value and expiry is adopted as it is
            WHERE (w.value, w.expires_at) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.expires_at)
        RETURNING w.agent_id, w.context_key, w.id)
    INSERT INTO memory_system.import_rows
           (import_id, kind, agent_id, source_ref, target_id, source_sha256, prior, adopted)
    SELECT p_import_id, 'working_memory', s.agent_id, s.source_ref, coalesce(u.id, p.id),
           memory_system._json_sha256(s.v), CASE WHEN u.id IS NOT NULL THEN to_jsonb(p) END,
           u.id IS NULL
      FROM src AS s
      LEFT JOIN up AS u ON u.agent_id = s.agent_id AND u.context_key = s.context_key
      LEFT JOIN prior AS p ON p.agent_id = s.agent_id AND p.context_key = s.context_key
     WHERE u.id IS NOT NULL OR p.id IS NOT NULL;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system._import_working_memory_rows(bigint, bigint, bigint) IS
'Writes staged working-memory keys (a key already there is replaced and kept in the ledger, or adopted if equal) of rows p_lo..p_hi and records them in the ledger; returns how many. Internal: called by import_batch.';

CREATE OR REPLACE FUNCTION memory_system._import_checkpoint_rows(p_import_id bigint, p_lo bigint, p_hi bigint)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
BEGIN
    WITH src AS MATERIALIZED (
        SELECT s.*, memory_system._import_json(s.state) AS st,
               coalesce(s.created_at::timestamptz, now()) AS at
          FROM pg_temp.nexus_import_checkpoint AS s
         WHERE s.n BETWEEN p_lo AND p_hi
           AND NOT EXISTS (SELECT FROM memory_system.import_rows AS r
                            WHERE r.kind = 'checkpoint' AND r.agent_id = s.agent_id
                              AND r.source_ref = s.source_ref)
    ),
    ins AS (
        INSERT INTO consciousness.consciousness_checkpoints
               (agent_id, checkpoint_name, state, metadata, created_at)
        SELECT s.agent_id, coalesce(s.checkpoint_name, 'default'), s.st,
               coalesce(memory_system._import_json(s.metadata), '{}'), s.at
          FROM src AS s
         -- the same snapshot (name and time) already there is adopted, not copied
         WHERE NOT EXISTS (SELECT FROM consciousness.consciousness_checkpoints AS c
                            WHERE c.agent_id = s.agent_id
                              AND c.checkpoint_name = coalesce(s.checkpoint_name, 'default')
                              AND c.created_at = s.at)
        RETURNING agent_id, checkpoint_name, created_at, id)
    INSERT INTO memory_system.import_rows
           (import_id, kind, agent_id, source_ref, target_id, source_sha256, adopted)
    SELECT p_import_id, 'checkpoint', s.agent_id, s.source_ref, coalesce(i.id, c.id),
           memory_system._json_sha256(s.st), i.id IS NULL
      FROM src AS s
      LEFT JOIN ins AS i ON i.agent_id = s.agent_id
                        AND i.checkpoint_name = coalesce(s.checkpoint_name, 'default') AND i.created_at = s.at
      LEFT JOIN LATERAL (SELECT c.id FROM consciousness.consciousness_checkpoints AS c
                          WHERE i.id IS NULL AND c.agent_id = s.agent_id
                            AND c.checkpoint_name = coalesce(s.checkpoint_name, 'default')
                            AND c.created_at = s.at
                          ORDER BY c.id LIMIT 1) AS c ON true
     WHERE i.id IS NOT NULL OR c.id IS NOT NULL;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system._import_checkpoint_rows(bigint, bigint, bigint) IS
'Writes staged checkpoints (the same name and time already there is adopted) of rows p_lo..p_hi and records them in the ledger; returns how many. Internal: called by import_batch.';


CREATE OR REPLACE FUNCTION memory_system.import_batch(p_import_id bigint, p_kind text,
                                                      p_lo bigint, p_hi bigint)
RETURNS TABLE (written bigint, rejected bigint)
LANGUAGE plpgsql
AS $$
DECLARE
    v_call text;
    v_row bigint;
    v_state text;
    v_msg text;
BEGIN
    IF p_kind NOT IN ('episode', 'semantic', 'working_memory', 'checkpoint') THEN
        RAISE EXCEPTION 'unknown import kind %', p_kind USING ERRCODE = 'NX050';
    END IF;
    v_call := format('SELECT memory_system._import_%s_rows($1, $2, $3)', p_kind);
    written := 0;
    rejected := 0;
    BEGIN
        EXECUTE v_call INTO written USING p_import_id, p_lo, p_hi;
        RETURN NEXT;
        RETURN;
    EXCEPTION
        -- a conflict with a parallel writer is not a bad row: the caller retries the batch
        WHEN deadlock_detected OR serialization_failure OR lock_not_available OR query_canceled THEN
            RAISE;
        WHEN OTHERS THEN
            NULL;   -- one bad row fails the set: find it row by row below
    END;
    FOR v_row IN EXECUTE format('SELECT n FROM pg_temp.nexus_import_%s WHERE n BETWEEN $1 AND $2 ORDER BY n',
                                p_kind) USING p_lo, p_hi LOOP
        BEGIN
            EXECUTE v_call INTO v_row USING p_import_id, v_row, v_row;
            written := written + v_row;
        EXCEPTION
            WHEN deadlock_detected OR serialization_failure OR lock_not_available OR query_canceled THEN
                RAISE;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                EXECUTE format('INSERT INTO memory_system.import_rejects '
                               '(import_id, kind, agent_id, source_ref, sqlstate, reason) '
                               'SELECT $1, $2, agent_id, source_ref, $3, $4 '
                               'FROM pg_temp.nexus_import_%s WHERE n = $5 ON CONFLICT DO NOTHING', p_kind)
                    USING p_import_id, p_kind, v_state, v_msg, v_row;
                rejected := rejected + 1;
        END;
    END LOOP;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION memory_system.import_batch(bigint, text, bigint, bigint) IS
'Writes staged rows p_lo..p_hi of one kind (episode, semantic, working_memory, checkpoint) for an
import, skipping rows the ledger already holds, and records each in memory_system.import_rows. A range
that fails is retried row by row; rows that still fail go to import_rejects with their error.';


CREATE OR REPLACE FUNCTION memory_system.import_dedupe_working_memory()
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows bigint;
BEGIN
    -- the same key from two sources (the table and Redis): the higher priority, then the later row wins
    DELETE FROM pg_temp.nexus_import_working_memory AS s
     USING pg_temp.nexus_import_working_memory AS t
     WHERE t.agent_id = s.agent_id AND t.context_key = s.context_key
       AND (t.priority, t.n) > (s.priority, s.n);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system.import_dedupe_working_memory() IS
'Drops staged working-memory rows whose key a higher-priority source also holds; returns how many.';


CREATE OR REPLACE FUNCTION memory_system.import_validate(p_import_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_model text := memory_system._embedding_model();
    v_report jsonb := '{}';
    v_kind text;
    v jsonb;
BEGIN
    -- every source row (pg_temp.nexus_import_check, read back from the source) must have a target
    -- row, found through the ledger (whichever import wrote it), whose checksum equals the source's
    FOR v_kind IN SELECT unnest(ARRAY['episode', 'semantic', 'working_memory', 'checkpoint']) LOOP
        WITH chk AS (
            SELECT c.agent_id, c.source_ref, c.sha256 AS src_sha, r.target_id, r.source_sha256 AS led_sha,
                   r.adapted,
                   -- metadata kept under "legacy_metadata" must be the source's text, unchanged
                   CASE WHEN v_kind = 'episode' AND 'metadata' = ANY (r.adapted) THEN
                       (SELECT sha256(convert_to(e.metadata ->> 'legacy_metadata', 'UTF8'))
                               IS NOT DISTINCT FROM c.meta_sha256
                          FROM nexus_memory.zep_episodic_memory AS e
                         WHERE e.agent_id = r.agent_id AND e.id = r.target_id)
                   -- a fact's key and validity must be the source's, when the source has them
                   WHEN v_kind = 'semantic' AND c.meta_sha256 IS NOT NULL THEN
                       (SELECT memory_system._fact_validity_sha256(m.fact_key, m.valid_from, m.valid_to, m.ended_by)
                               = c.meta_sha256
                          FROM nexus_memory.semantic_memories AS m
                         WHERE m.agent_id = r.agent_id AND m.id = r.target_id)
                   END AS meta_ok,
                   CASE v_kind
                       WHEN 'episode' THEN (SELECT e.content_sha256 FROM nexus_memory.zep_episodic_memory AS e
                                             WHERE e.agent_id = r.agent_id AND e.id = r.target_id)
                       WHEN 'semantic' THEN (SELECT m.content_sha256 FROM nexus_memory.semantic_memories AS m
                                              WHERE m.agent_id = r.agent_id AND m.id = r.target_id)
                       WHEN 'working_memory' THEN (SELECT memory_system._json_sha256(w.value)
                                                     FROM nexus_memory.working_memory_contexts AS w
                                                    WHERE w.agent_id = r.agent_id AND w.id = r.target_id)
                       ELSE (SELECT memory_system._json_sha256(k.state)
                               FROM consciousness.consciousness_checkpoints AS k
                              WHERE k.agent_id = r.agent_id AND k.id = r.target_id)
                   END AS tgt_sha
              FROM pg_temp.nexus_import_check AS c
              LEFT JOIN memory_system.import_rows AS r
                ON r.kind = c.kind AND r.agent_id = c.agent_id AND r.source_ref = c.source_ref
             WHERE c.kind = v_kind),
        rej AS (
            SELECT j.source_ref, j.sqlstate, j.reason FROM memory_system.import_rejects AS j
             WHERE j.import_id = p_import_id AND j.kind = v_kind)
        SELECT jsonb_build_object(
                   'source', count(*),
                   'target', count(*) FILTER (WHERE tgt_sha IS NOT NULL),
                   'equal', count(*) FILTER (WHERE tgt_sha = src_sha AND led_sha = src_sha
                                                AND meta_ok IS NOT FALSE),
                   'missing', count(*) FILTER (WHERE tgt_sha IS NULL),
                   'mismatched', count(*) FILTER (WHERE tgt_sha IS NOT NULL
                                                    AND (tgt_sha IS DISTINCT FROM src_sha
                                                         OR led_sha IS DISTINCT FROM src_sha
                                                         OR meta_ok IS FALSE)),
                   'rejected', (SELECT count(*) FROM rej),
                   -- rows written adapted (nexus import legacy --adapt): counted and listed, and
                   -- compared with the source like the others (content checksum; kept metadata)
                   'adapted', count(*) FILTER (WHERE tgt_sha IS NOT NULL AND adapted IS NOT NULL),
                   'adapted_by', (SELECT coalesce(jsonb_object_agg(a.what, a.n), '{}') FROM
                                   (SELECT w AS what, count(*) AS n FROM chk, unnest(chk.adapted) AS w
                                     WHERE chk.tgt_sha IS NOT NULL GROUP BY w) AS a),
                   'embedded', CASE WHEN v_kind IN ('episode', 'semantic') THEN
                                   count(*) FILTER (WHERE tgt_sha IS NOT NULL AND memory_system._embedded(
                                       CASE v_kind WHEN 'episode' THEN 'zep_episodic_memory' ELSE 'semantic_memories' END,
                                       agent_id, target_id, tgt_sha, v_model)) END,
                   'examples', jsonb_build_object(
                       'missing', coalesce((SELECT jsonb_agg(x.source_ref) FROM
                                            (SELECT source_ref FROM chk WHERE tgt_sha IS NULL
                                              ORDER BY source_ref LIMIT 10) AS x), '[]'),
                       'mismatched', coalesce((SELECT jsonb_agg(x.source_ref) FROM
                                               (SELECT source_ref FROM chk
                                                 WHERE tgt_sha IS NOT NULL
                                                   AND (tgt_sha IS DISTINCT FROM src_sha OR led_sha IS DISTINCT FROM src_sha
                                                        OR meta_ok IS FALSE)
                                                 ORDER BY source_ref LIMIT 10) AS x), '[]'),
                       'adapted', coalesce((SELECT jsonb_agg(jsonb_build_object('source_ref', x.source_ref,
                                                                                'adapted', to_jsonb(x.adapted))) FROM
                                            (SELECT source_ref, adapted FROM chk
                                              WHERE tgt_sha IS NOT NULL AND adapted IS NOT NULL
                                              ORDER BY source_ref LIMIT 10) AS x), '[]'),
                       'rejected', coalesce((SELECT jsonb_agg(jsonb_build_object('source_ref', x.source_ref,
                                                 'sqlstate', x.sqlstate, 'reason', x.reason)) FROM
                                             (SELECT * FROM rej ORDER BY source_ref LIMIT 10) AS x), '[]')))
          INTO v FROM chk;
        v_report := v_report || jsonb_build_object(v_kind, v);
    END LOOP;
    v_report := jsonb_build_object(
        'import_id', p_import_id,
        'ok', NOT EXISTS (SELECT FROM jsonb_each(v_report) AS e
                           WHERE (e.value ->> 'source')::bigint <> (e.value ->> 'equal')::bigint
                              OR (e.value ->> 'rejected')::bigint > 0),
        'kinds', v_report);
    UPDATE memory_system.imports SET report = v_report WHERE import_id = p_import_id;
    RETURN v_report;
END
$$;
COMMENT ON FUNCTION memory_system.import_validate(bigint) IS
'Compares the source rows read back into pg_temp.nexus_import_check with the target, through the
ledger: per kind the source and target counts, rows with equal checksums, missing, mismatched and
rejected rows (with examples), rows written adapted (count, by what, examples) and how many are
embedded. An adapted row is equal only if its content checksum is the source''s and, for kept
metadata, {"legacy_metadata": text} holds the source''s metadata text; a fact of a source that
has its validity (JSONL version 2) only if its key, valid_from, valid_to and ended_by are the
source''s too. ok is true only if every
source row is there and equal and nothing was rejected (adapted rows may be). Stores the report on
the import.';


CREATE OR REPLACE FUNCTION memory_system.import_rollback(p_import_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_state text;
    v_episodes bigint;
    v_facts bigint;
    v_wm bigint;
    v_restored bigint;
    v_checkpoints bigint;
BEGIN
    SELECT state INTO v_state FROM memory_system.imports WHERE import_id = p_import_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'import % does not exist', p_import_id USING ERRCODE = 'NX051';
    END IF;
    IF v_state = 'rolled_back' THEN
        RAISE EXCEPTION 'import % is already rolled back', p_import_id USING ERRCODE = 'NX052';
    END IF;
    -- a running import holds this lock for its whole run
    IF NOT pg_try_advisory_xact_lock(hashtext('nexus_import'), p_import_id::integer) THEN
        RAISE EXCEPTION 'import % is still running', p_import_id USING ERRCODE = 'NX052',
            HINT = 'Stop it first; what it wrote so far is rolled back with the rest.';
    END IF;

    DELETE FROM nexus_memory.semantic_memories AS m USING memory_system.import_rows AS r
     WHERE r.import_id = p_import_id AND r.kind = 'semantic' AND NOT r.adopted
       AND m.agent_id = r.agent_id AND m.id = r.target_id;
    GET DIAGNOSTICS v_facts = ROW_COUNT;
    DELETE FROM nexus_memory.zep_episodic_memory AS e USING memory_system.import_rows AS r
     WHERE r.import_id = p_import_id AND r.kind = 'episode' AND NOT r.adopted
       AND e.agent_id = r.agent_id AND e.id = r.target_id;
    GET DIAGNOSTICS v_episodes = ROW_COUNT;
    DELETE FROM consciousness.consciousness_checkpoints AS c USING memory_system.import_rows AS r
     WHERE r.import_id = p_import_id AND r.kind = 'checkpoint' AND NOT r.adopted
       AND c.agent_id = r.agent_id AND c.id = r.target_id;
    GET DIAGNOSTICS v_checkpoints = ROW_COUNT;
    DELETE FROM nexus_memory.working_memory_contexts AS w USING memory_system.import_rows AS r
     WHERE r.import_id = p_import_id AND r.kind = 'working_memory' AND NOT r.adopted
       AND w.agent_id = r.agent_id AND w.id = r.target_id;
    GET DIAGNOSTICS v_wm = ROW_COUNT;
    -- keys the import replaced come back as they were: same id, value, expiry and times
    INSERT INTO nexus_memory.working_memory_contexts
           (id, agent_id, context_key, value, expires_at, created_at, updated_at)
    OVERRIDING SYSTEM VALUE
    SELECT p.id, p.agent_id, p.context_key, p.value, p.expires_at, p.created_at, p.updated_at
      FROM memory_system.import_rows AS r,
           jsonb_populate_record(NULL::nexus_memory.working_memory_contexts, r.prior) AS p
     WHERE r.import_id = p_import_id AND r.kind = 'working_memory' AND r.prior IS NOT NULL;
    GET DIAGNOSTICS v_restored = ROW_COUNT;

    DELETE FROM memory_system.import_rows WHERE import_id = p_import_id;
    DELETE FROM memory_system.import_rejects WHERE import_id = p_import_id;
    UPDATE memory_system.imports SET state = 'rolled_back', finished_at = now()
     WHERE import_id = p_import_id;
    RETURN jsonb_build_object('import_id', p_import_id, 'episodes_deleted', v_episodes,
                              'facts_deleted', v_facts, 'checkpoints_deleted', v_checkpoints,
                              'working_memory_deleted', v_wm, 'working_memory_restored', v_restored);
END
$$;
COMMENT ON FUNCTION memory_system.import_rollback(bigint) IS
'Puts the database back as it was before an import: deletes the memories it wrote (their vectors,
queue items and postings go with them) and restores the working-memory keys it replaced. NX051: no
such import; NX052: already rolled back, or still running.';
