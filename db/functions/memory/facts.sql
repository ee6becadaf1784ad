-- Internal helpers of the fact functions (db/functions/api/episodes.sql; the model: docs/facts.md).

-- the same normalisation as the generated column semantic_memories.content_norm_sha256
-- (migrations/0017_fact_validity.sql); pgTAP 14_facts checks that the two agree
CREATE OR REPLACE FUNCTION memory_system._fact_text_sha256(p_content text)
RETURNS bytea
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT sha256(decode(replace(coalesce(nullif(
        regexp_replace(regexp_replace(lower(p_content), '[[:space:]]+', ' ', 'g'),
                       '^[[:space:][:punct:]]+|[[:space:][:punct:]]+$', '', 'g'), ''), p_content),
        '\', '\\'), 'escape'))
$$;
COMMENT ON FUNCTION memory_system._fact_text_sha256(text) IS
'sha256 of a fact''s normalised text (lower case, runs of whitespace as one space, no surrounding
punctuation or whitespace): what deduplication compares, as semantic_memories.content_norm_sha256
stores it. Internal.';


-- what a fact is searched by: migrations/0025_facts_found_by_key.sql indexes the same text
CREATE OR REPLACE FUNCTION memory_system._fact_text(p_key text, p_content text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$ SELECT CASE WHEN p_key IS NULL THEN p_content ELSE p_key || ': ' || p_content END $$;
COMMENT ON FUNCTION memory_system._fact_text(text, text) IS
'The text a fact''s vector is made from (memory_system.claim_batch): its key, which names what it is
about, then its content ("user.city: I moved to Denver"), so that a question about the city finds the
fact whatever words it uses. Internal.';


-- a fact's key and validity as one checksum: what import validation compares (import_validate)
CREATE OR REPLACE FUNCTION memory_system._fact_validity_sha256(
    p_key text, p_valid_from timestamptz, p_valid_to timestamptz, p_ended_by text)
RETURNS bytea
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT sha256(convert_to(concat_ws(chr(10), coalesce(p_key, ''), extract(epoch FROM p_valid_from)::text,
                                       coalesce(extract(epoch FROM p_valid_to)::text, ''),
                                       coalesce(p_ended_by, '')), 'UTF8'))
$$;
COMMENT ON FUNCTION memory_system._fact_validity_sha256(text, timestamptz, timestamptz, text) IS
'sha256 of a fact''s key, valid time (to the microsecond) and what ended it: nexus import''s
validation compares the source''s with the target''s (memory_system.import_validate). Internal.';


CREATE OR REPLACE FUNCTION memory_system._fact_lock(p_agent_id text, p_what text)
RETURNS void
LANGUAGE sql
AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('nexus.fact' || chr(10) || p_agent_id || chr(10) || p_what, 0))
$$;
COMMENT ON FUNCTION memory_system._fact_lock(text, text) IS
'Serialises the writes of one agent to one key (or, for unkeyed facts, to one normalised text)
until the end of the transaction: the second writer waits, then reads what the first committed.
The exclusion constraint on semantic_memories is the backstop. Internal.';


CREATE OR REPLACE FUNCTION memory_system._fact_rows(p_key text, p_ids bigint[], p_at timestamptz, p_agent text)
RETURNS TABLE (id bigint, content text, metadata jsonb, tags text[], importance real,
               source_episode_id bigint, created_at timestamptz, updated_at timestamptz,
               embedded boolean, fact_key text, valid_from timestamptz, valid_to timestamptz,
               ended_by text, ended_at timestamptz, superseded_by bigint, is_current boolean)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, s.content, s.metadata, s.tags, s.importance, s.source_episode_id, s.created_at,
           s.updated_at,
           memory_system._embedded('semantic_memories', s.agent_id, s.id, s.content_sha256,
                                   memory_system._embedding_model()),
           s.fact_key, s.valid_from, s.valid_to, s.ended_by, s.ended_at, s.superseded_by,
           s.valid_from <= now() AND (s.valid_to IS NULL OR s.valid_to > now())
      FROM nexus_memory.semantic_memories AS s
     WHERE s.agent_id = p_agent
       AND (s.fact_key = p_key OR s.id = ANY (p_ids))
       AND (p_at IS NULL OR (s.valid_from <= p_at AND (s.valid_to IS NULL OR s.valid_to > p_at)))
$$;
COMMENT ON FUNCTION memory_system._fact_rows(text, bigint[], timestamptz, text) IS
'The facts of memory p_agent (the caller''s own, or a space it may read: row-level security holds
either way) of key p_key and those of ids p_ids that hold at p_at (NULL: all), as
get_fact and fact_history return them (is_current: it holds now). Unordered. Internal.';


-- the fact an API call ends (remember_fact's supersedes, invalidate_fact), locked
CREATE OR REPLACE FUNCTION memory_system._fact_to_end(p_fact_id bigint, p_at timestamptz)
RETURNS nexus_memory.semantic_memories
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent text;
    v_key   text;
    v_fact  nexus_memory.semantic_memories;
BEGIN
    -- the caller's own fact, or one of a space it may write (docs/spaces.md)
    SELECT s.agent_id, s.fact_key INTO v_agent, v_key FROM nexus_memory.semantic_memories AS s
     WHERE s.agent_id = ANY (memory_system._writable_ids()) AND s.id = p_fact_id;
    IF v_key IS NOT NULL THEN
        PERFORM memory_system._fact_lock(v_agent, v_key);
    END IF;
    SELECT * INTO v_fact FROM nexus_memory.semantic_memories AS s
     WHERE s.agent_id = v_agent AND s.id = p_fact_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fact % not found', p_fact_id USING ERRCODE = 'NX033';
    END IF;
    IF v_fact.valid_to IS NOT NULL THEN
        RAISE EXCEPTION 'fact % has already ended', p_fact_id USING ERRCODE = 'NX038',
            DETAIL = format('%s at %s%s', v_fact.ended_by, v_fact.valid_to, ' by fact ' || v_fact.superseded_by),
            HINT = 'Only a fact that has not ended can be superseded or invalidated (fact_history lists them).';
    END IF;
    IF p_at < v_fact.valid_from THEN
        RAISE EXCEPTION 'fact % would stop holding before it began', p_fact_id USING ERRCODE = 'NX037',
            DETAIL = format('it holds from %s, not before %s', v_fact.valid_from, p_at);
    END IF;
    RETURN v_fact;
END
$$;
COMMENT ON FUNCTION memory_system._fact_to_end(bigint, timestamptz) IS
'The calling agent''s fact p_fact_id (or a fact of a space it may write), locked (its key, then its row), that is to end at p_at. NX033
if the agent has no such fact (another agent''s included), NX038 if it has ended already, NX037 if
p_at is before its valid_from. Internal: remember_fact (supersedes) and invalidate_fact.';


CREATE OR REPLACE FUNCTION memory_system._fact_check_input(
    p_content text, p_metadata jsonb, p_tags text[], p_importance real, p_key text, p_source_episode_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF nullif(btrim(p_content), '') IS NULL THEN
        RAISE EXCEPTION 'a fact needs content' USING ERRCODE = 'NX031';
    END IF;
    -- checked here too, as the validation trigger would: a fact that is one already stored is
    -- not inserted, and bad input is refused all the same
    PERFORM memory_system._check_size('content', octet_length(p_content), 262144);
    PERFORM memory_system._check_json_object('metadata', p_metadata, 65536);
    PERFORM memory_system._check_tags(p_tags);
    IF p_importance IS NULL OR NOT p_importance BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'importance must be between 0 and 1, got %', p_importance USING ERRCODE = 'NX015';
    END IF;
    PERFORM memory_system._check_fact_key(p_key);
    IF p_source_episode_id IS NOT NULL AND NOT EXISTS (
            SELECT FROM nexus_memory.zep_episodic_memory AS e
             WHERE e.agent_id = ANY (memory_system._writable_ids())
               AND e.id = p_source_episode_id) THEN
        RAISE EXCEPTION 'episode % not found', p_source_episode_id USING ERRCODE = 'NX033';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._fact_check_input(text, jsonb, text[], real, text, bigint) IS
'Checks remember_fact''s input before anything is written: NX031 empty content, the validation codes
of record_episode (size, metadata, tags, NX015 importance), NX036 bad key, NX033 a source episode
the calling agent does not have. Internal.';


CREATE OR REPLACE FUNCTION memory_system._fact_merge(
    p_id bigint, p_metadata jsonb, p_tags text[], p_importance real, p_source_episode_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE nexus_memory.semantic_memories AS s
       SET metadata = s.metadata || p_metadata,
           tags = ARRAY(SELECT DISTINCT t FROM unnest(s.tags || p_tags) AS t ORDER BY t),
           importance = greatest(s.importance, p_importance),
           source_episode_id = coalesce(p_source_episode_id, s.source_episode_id)
     WHERE s.agent_id = ANY (memory_system._writable_ids()) AND s.id = p_id
$$;
COMMENT ON FUNCTION memory_system._fact_merge(bigint, jsonb, text[], real, bigint) IS
'remember_fact''s deduplication: the calling agent''s fact p_id is the new one again; its metadata
merged with p_metadata, its tags united with p_tags, the higher importance kept, the source
episode given replacing its own. Internal.';
