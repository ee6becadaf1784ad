-- Episodes and semantic memories: the agent API. SECURITY INVOKER: row-level security scopes every
-- statement to the calling agent; another agent's id behaves exactly like an id that does not exist.

CREATE OR REPLACE FUNCTION nexus.record_episode(
    content      text,
    action_type  text DEFAULT 'observation',
    metadata     jsonb DEFAULT '{}',
    tags         text[] DEFAULT '{}',
    importance   real DEFAULT 0.5,
    session      text DEFAULT NULL,
    source       text DEFAULT 'text',
    valid_at     timestamptz DEFAULT NULL,
    space        text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF content IS NULL THEN
        RAISE EXCEPTION 'content must not be NULL' USING ERRCODE = 'NX031';
    END IF;
    IF nullif(btrim(action_type), '') IS NULL OR length(action_type) > 64 THEN
        RAISE EXCEPTION 'action_type must be 1 to 64 characters' USING ERRCODE = 'NX031';
    END IF;
    INSERT INTO nexus_memory.zep_episodic_memory
           (agent_id, content, action_type, metadata, tags, importance, session_id, source, valid_at)
    VALUES (memory_system._write_target(space), content, action_type, coalesce(metadata, '{}'),
            coalesce(tags, '{}'), importance, session, coalesce(source, 'text'), valid_at)
    RETURNING zep_episodic_memory.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.record_episode(text, text, jsonb, text[], real, text, text, timestamptz, text) IS
'Records an episode (an action, observation or message) of the calling agent and returns its id; in
space (docs/spaces.md), a space the agent may write, instead of its own memory, with the agent as author.
It is embedded in the background (see nexus.memory_stats). Errors: NX001 not an agent, NX031 no content
or bad action_type, NX011 content over 256 KiB / metadata over 64 KiB, NX012 metadata not an object,
NX015 empty or whitespace-only content, importance outside 0-1 or bad tags, NX080 no space you may write.

MCP: Remember something that happened: what you did, saw, were told or said. recall finds it later
by its meaning or its words. Returns the new episode''s id. For a lasting fact, use remember_fact.
- content: What happened, in plain words: not empty, up to 256 KiB. Example: "The user prefers short
  answers and hates long emails."
- action_type: What kind of episode it is, 1 to 64 characters (default "observation"). Example: "message".
- metadata: Structured details to filter by later, a JSON object up to 64 KiB (default {}).
  Example: {"customer": "ACME"}.
- tags: Labels to filter by later: up to 64, each 1 to 64 characters (default none). Example: ["billing", "user"].
- importance: How much it matters, from 0 to 1 (default 0.5). Example: 0.9.
- session: The conversation or task it belongs to, any name (default none); recall and recent can keep
  to one session. Example: "onboarding".
- source: Where the content came from, any short word (default "text"). Example: "email".
- valid_at: When it happened, if not now: an ISO 8601 date-time (default none). Example: "2025-06-01T09:30:00Z".
- space: A shared space to remember it in instead of your own memory, one you may write (see the spaces
  tool; default: your own). Example: "billing-team".';


CREATE OR REPLACE FUNCTION nexus.get_episode(episode_id bigint)
RETURNS TABLE (id bigint, episode_uuid uuid, session_id text, action_type text, source text, content text,
               metadata jsonb, tags text[], importance real, valid_at timestamptz, created_at timestamptz,
               updated_at timestamptz, embedded boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    RETURN QUERY
    SELECT e.id, e.episode_uuid, e.session_id, e.action_type, e.source, e.content, e.metadata, e.tags,
           e.importance, e.valid_at, e.created_at, e.updated_at,
           memory_system._embedded('zep_episodic_memory', e.agent_id, e.id, e.content_sha256,
                                   memory_system._embedding_model())
      FROM nexus_memory.zep_episodic_memory AS e
     -- its own, or one of a space it reads (docs/spaces.md)
     WHERE e.agent_id = ANY (memory_system._readable_ids()) AND e.id = get_episode.episode_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'episode % not found', get_episode.episode_id USING ERRCODE = 'NX033';
    END IF;
    -- the read record (docs/privacy.md)
    PERFORM memory_system._record_read('get_episode', json_build_object('episode_id', get_episode.episode_id)::text,
                                       '{episode}', ARRAY[get_episode.episode_id]);
END
$$;
COMMENT ON FUNCTION nexus.get_episode(bigint) IS
'One episode of the calling agent (or of a space it may read: docs/spaces.md); embedded tells whether
its current content has a vector. Errors: NX033 not found (another agent''s episode is not found
either).

MCP: Read one of your episodes in full, by its id (remember, recall and recent give ids), and whether it
is embedded yet (searchable by meaning).
- episode_id: The episode''s id, a whole number. Example: 42.';


CREATE OR REPLACE FUNCTION nexus.update_episode(
    episode_id   bigint,
    content      text DEFAULT NULL,
    metadata     jsonb DEFAULT NULL,
    tags         text[] DEFAULT NULL,
    importance   real DEFAULT NULL,
    action_type  text DEFAULT NULL,
    session      text DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_updated timestamptz;
BEGIN
    PERFORM nexus.current_agent();
    IF action_type IS NOT NULL AND (btrim(action_type) = '' OR length(action_type) > 64) THEN
        RAISE EXCEPTION 'action_type must be 1 to 64 characters' USING ERRCODE = 'NX031';
    END IF;
    UPDATE nexus_memory.zep_episodic_memory AS e
       SET content = coalesce(update_episode.content, e.content),
           metadata = coalesce(update_episode.metadata, e.metadata),
           tags = coalesce(update_episode.tags, e.tags),
           importance = coalesce(update_episode.importance, e.importance),
           action_type = coalesce(update_episode.action_type, e.action_type),
           session_id = coalesce(update_episode.session, e.session_id)
     WHERE e.agent_id = ANY (memory_system._writable_ids()) AND e.id = update_episode.episode_id
    RETURNING e.updated_at INTO v_updated;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'episode % not found', update_episode.episode_id USING ERRCODE = 'NX033';
    END IF;
    RETURN v_updated;
END
$$;
COMMENT ON FUNCTION nexus.update_episode(bigint, text, jsonb, text[], real, text, text) IS
'Changes the given fields of one of the calling agent''s episodes, or of a space it may write
(docs/spaces.md; the author stays), (NULL leaves a field as it is) and
returns updated_at. New content is re-embedded through the queue; until then search uses the text index
and the old vector is never shown for the new content. Errors: NX033 not found, plus those of record_episode.

MCP: Change one of your episodes: give its id and only the fields to change; the others stay as they
are (new tags or metadata replace the old ones). Returns when it was updated.
- episode_id: The id of the episode to change. Example: 42.
- content: The new text, not empty, up to 256 KiB (default: unchanged). Example: "The ACME invoice was paid
  on 3 June."
- metadata: New metadata, a JSON object up to 64 KiB that replaces the old (default: unchanged).
  Example: {"status": "paid"}.
- tags: New labels that replace the old: up to 64, each 1 to 64 characters (default: unchanged).
  Example: ["billing", "done"].
- importance: New importance, from 0 to 1 (default: unchanged). Example: 0.2.
- action_type: New kind of episode, 1 to 64 characters (default: unchanged). Example: "message".
- session: Move it to this conversation or task (default: unchanged). Example: "onboarding".';


CREATE OR REPLACE FUNCTION nexus.delete_episode(episode_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM nexus_memory.zep_episodic_memory AS e
         WHERE e.agent_id = ANY (memory_system._writable_ids()) AND e.id = delete_episode.episode_id
        RETURNING 1)
    SELECT EXISTS (SELECT FROM d)
$$;
COMMENT ON FUNCTION nexus.delete_episode(bigint) IS
'Deletes one of the calling agent''s episodes (or of a space it may write: docs/spaces.md) with its
vector, postings and queued work; true if it existed.

MCP: Forget one of your episodes for good, by its id. Returns true if it was deleted, false if there
was no such episode.
- episode_id: The id of the episode to forget. Example: 42.';


CREATE OR REPLACE FUNCTION nexus.recent_episodes(
    limit_n            integer DEFAULT 20,
    session            text DEFAULT NULL,
    since              timestamptz DEFAULT NULL,
    until              timestamptz DEFAULT NULL,
    tags_all           text[] DEFAULT NULL,
    before_created_at  timestamptz DEFAULT NULL,
    before_id          bigint DEFAULT NULL,
    space              text DEFAULT NULL)
RETURNS TABLE (id bigint, episode_uuid uuid, session_id text, action_type text, source text, content text,
               metadata jsonb, tags text[], importance real, valid_at timestamptz, created_at timestamptz,
               updated_at timestamptz, author text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    -- the caller's own episodes, or those of a space it may read
    v_agent text := CASE WHEN space IS NULL THEN current_user::text ELSE memory_system._space_id(space) END;
BEGIN
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', limit_n USING ERRCODE = 'NX031';
    END IF;
    IF (before_created_at IS NULL) <> (before_id IS NULL) THEN
        RAISE EXCEPTION 'before_created_at and before_id go together (the last row of the previous page)'
            USING ERRCODE = 'NX031';
    END IF;
    RETURN QUERY
    WITH hits AS MATERIALIZED (
    SELECT e.id, e.episode_uuid, e.session_id, e.action_type, e.source, e.content, e.metadata, e.tags,
           e.importance, e.valid_at, e.created_at, e.updated_at, coalesce(e.author, e.agent_id)
      FROM nexus_memory.zep_episodic_memory AS e
     WHERE e.agent_id = (v_agent COLLATE "default")
       AND (session IS NULL OR e.session_id = session)
       AND (since IS NULL OR e.created_at >= since)
       AND (until IS NULL OR e.created_at < until)
       AND (tags_all IS NULL OR e.tags @> tags_all)
       AND (before_id IS NULL OR (e.created_at, e.id) < (before_created_at, before_id))
     ORDER BY e.created_at DESC, e.id DESC
     LIMIT limit_n)
    -- the read record (docs/privacy.md): one call with the rows in order, as in memory_search
    SELECT h.* FROM hits AS h
     WHERE (SELECT memory_system._record_read('recent_episodes',
                       json_strip_nulls(json_build_object('limit_n', limit_n, 'session', session, 'since', since,
                           'until', until, 'tags_all', tags_all, 'before_created_at', before_created_at,
                           'before_id', before_id))::text,
                       array_agg('episode'::text), array_agg(x.id))
              FROM hits AS x) IS NOT NULL;
END
$$;
COMMENT ON FUNCTION nexus.recent_episodes(integer, text, timestamptz, timestamptz, text[], timestamptz, bigint,
                                         text) IS
'The calling agent''s episodes, or with space those of a space it may read (docs/spaces.md), newest
first, each with its author, optionally of one session, a time range [since, until)
and carrying all of tags_all. Paged by keyset: pass the created_at and id of the last row of a page
to get the next. Errors: NX031 bad limit or half a page cursor, NX080 no space you may read.

MCP: List your latest episodes, newest first, optionally of one session, a time window or tags. For
the next page, give the created_at and id of the last episode you got as before_created_at and before_id.
- limit_n: How many episodes to return, 1 to 1000 (default 20). Example: 10.
- session: Only episodes of this conversation or task (default: all). Example: "onboarding".
- since: Only episodes recorded at or after this time, ISO 8601 (default: no limit). Example: "2025-06-01T00:00:00Z".
- until: Only episodes recorded before this time, ISO 8601 (default: no limit). Example: "2025-06-02T00:00:00Z".
- tags_all: Only episodes carrying every one of these tags (default: any). Example: ["billing"].
- before_created_at: For the next page: the created_at of the last episode of the previous page, with
  before_id. Example: "2025-06-01T09:30:00.123456+00:00".
- before_id: For the next page: the id of the last episode of the previous page, with
  before_created_at. Example: 42.
- space: List the episodes of this shared space instead of your own, one you may read (see the spaces
  tool; default: your own). Example: "billing-team".';


-- semantic memories (facts; the model: docs/facts.md) ----------------------------------------------
CREATE OR REPLACE FUNCTION nexus.remember_fact(
    content            text,
    metadata           jsonb DEFAULT '{}',
    tags               text[] DEFAULT '{}',
    importance         real DEFAULT 0.5,
    source_episode_id  bigint DEFAULT NULL,
    key                text DEFAULT NULL,
    supersedes         bigint DEFAULT NULL,
    valid_from         timestamptz DEFAULT NULL,
    space              text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_agent  text := memory_system._write_target(space);   -- own memory, or a space (docs/spaces.md)
    v_from   timestamptz := coalesce(valid_from, now());
    v_meta   jsonb := coalesce(metadata, '{}');
    v_tags   text[] := coalesce(tags, '{}');
    v_key    text := key;
    v_sha    bytea := memory_system._fact_text_sha256(content);
    -- the fact the new one replaces: the key's fact in force at v_from, or the one superseded
    v_old    nexus_memory.semantic_memories;
    -- the fact the new one runs into: the next in the key's history
    v_next   nexus_memory.semantic_memories;
    -- the fact the new one turns out to be (deduplication)
    v_same   bigint;
    v_id     bigint;
BEGIN
    PERFORM nexus.current_agent();
    PERFORM memory_system._fact_check_input(content, v_meta, v_tags, importance, key, source_episode_id);

    IF supersedes IS NOT NULL THEN
        -- explicit: that fact ends where this one begins; this one takes its key
        v_old := memory_system._fact_to_end(supersedes, v_from);
        IF v_old.agent_id IS DISTINCT FROM v_agent THEN
            RAISE EXCEPTION 'fact % not found', supersedes USING ERRCODE = 'NX033',
                HINT = 'A fact supersedes one of the same memory: your own, or the same space.';
        END IF;
        v_key := v_old.fact_key;
        IF key IS DISTINCT FROM v_key AND key IS NOT NULL THEN
            RAISE EXCEPTION 'a fact can only supersede a fact of its own key' USING ERRCODE = 'NX031',
                DETAIL = format('fact %s has key %s, not %s', supersedes, coalesce(quote_literal(v_key), 'none'),
                                quote_literal(key));
        END IF;
        IF v_old.content_norm_sha256 = v_sha THEN
            v_same := v_old.id;
        END IF;
    ELSIF key IS NOT NULL THEN
        -- keyed: the key's fact in force at v_from ends there (one writer of a key at a time)
        PERFORM memory_system._fact_lock(v_agent, key);
        SELECT * INTO v_old FROM nexus_memory.semantic_memories AS s
         WHERE s.agent_id = v_agent AND s.fact_key = key
           AND s.valid_from <= v_from AND (s.valid_to IS NULL OR s.valid_to > v_from)
           FOR UPDATE;
        IF v_old.content_norm_sha256 = v_sha THEN
            v_same := v_old.id;
        ELSIF v_old.id IS NOT NULL THEN
            SELECT * INTO v_next FROM nexus_memory.semantic_memories AS s
             WHERE s.agent_id = v_agent AND s.id = v_old.superseded_by AND s.valid_from = v_old.valid_to
               FOR UPDATE;
        ELSE
            SELECT * INTO v_next FROM nexus_memory.semantic_memories AS s
             WHERE s.agent_id = v_agent AND s.fact_key = key AND s.valid_from > v_from
             ORDER BY s.valid_from, s.valid_to IS NOT DISTINCT FROM s.valid_from DESC, s.id
             LIMIT 1 FOR UPDATE;
        END IF;
        -- the fact it runs into says the same: that fact held since v_from
        IF v_next.content_norm_sha256 = v_sha THEN
            IF v_old.id IS NOT NULL THEN
                UPDATE nexus_memory.semantic_memories AS s
                   SET valid_to = v_from, ended_by = 'superseded', ended_at = now(), superseded_by = v_next.id
                 WHERE s.agent_id = v_agent AND s.id = v_old.id;
            END IF;
            UPDATE nexus_memory.semantic_memories AS s SET valid_from = v_from
             WHERE s.agent_id = v_agent AND s.id = v_next.id;
            v_same := v_next.id;
        END IF;
    ELSE
        -- unkeyed: one of the agent's unended unkeyed facts with the same normalised text is it
        PERFORM memory_system._fact_lock(v_agent, 'text ' || encode(v_sha, 'hex'));
        SELECT s.id INTO v_same FROM nexus_memory.semantic_memories AS s
         WHERE s.agent_id = v_agent AND s.content_norm_sha256 = v_sha AND s.fact_key IS NULL
           AND s.valid_to IS NULL
         ORDER BY s.id LIMIT 1;
    END IF;

    IF v_same IS NOT NULL THEN
        -- the same fact again: metadata merged, tags united, the higher importance kept
        PERFORM memory_system._fact_merge(v_same, v_meta, v_tags, importance, source_episode_id);
        RETURN v_same;
    END IF;

    -- the fact replaced ends where the new one begins; the new one takes over its end (open, or
    -- in the middle of a history what ended it), else runs into the next fact of its key
    IF v_old.id IS NOT NULL THEN
        UPDATE nexus_memory.semantic_memories AS s
           SET valid_to = v_from, ended_by = 'superseded', ended_at = now(), superseded_by = NULL
         WHERE s.agent_id = v_agent AND s.id = v_old.id;
    END IF;
    INSERT INTO nexus_memory.semantic_memories AS s
           (agent_id, content, metadata, tags, importance, source_episode_id, fact_key, valid_from, valid_to,
            ended_by, ended_at, superseded_by)
    SELECT v_agent, content, v_meta, v_tags, importance, source_episode_id, v_key, v_from, e.valid_to,
           e.ended_by, CASE WHEN e.ended_by IS NOT NULL THEN now() END, e.superseded_by
      FROM (SELECT v_old.valid_to, v_old.ended_by, v_old.superseded_by WHERE v_old.id IS NOT NULL
            UNION ALL
            SELECT v_next.valid_from, 'superseded', v_next.id WHERE v_old.id IS NULL AND v_next.id IS NOT NULL
            UNION ALL
            SELECT NULL, NULL, NULL WHERE v_old.id IS NULL AND v_next.id IS NULL)
           AS e (valid_to, ended_by, superseded_by)
    RETURNING s.id INTO v_id;
    IF v_old.id IS NOT NULL THEN
        UPDATE nexus_memory.semantic_memories AS s SET superseded_by = v_id
         WHERE s.agent_id = v_agent AND s.id = v_old.id;
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.remember_fact(text, jsonb, text[], real, bigint, text, bigint, timestamptz, text) IS
'Stores a fact (semantic memory) of the calling agent and returns its id. A fact holds from
valid_from (default now) until it ends (docs/facts.md). With key, it replaces the agent''s fact of
that key in force at valid_from, which ends where the new one begins; a valid_from inside the key''s
past splits its history (the new fact holds until what followed). With supersedes, it ends that
fact (which must not have ended) and takes its key. The same fact again, by normalised text (case,
whitespace, surrounding punctuation), is one fact: the same id, metadata merged, tags united, the
higher importance kept; "the same" is the fact it would replace (keyed or supersedes; the fact of the
key that follows begins at valid_from instead), or an unended unkeyed fact (unkeyed). One writer of a
key at a time; an exclusion constraint keeps one fact per key at any instant. Errors: NX031 empty
content or a key other than the superseded fact''s, NX033 unknown source episode or superseded fact
(another agent''s is unknown too), NX036 bad key, NX037 valid_from before the superseded fact began,
NX038 superseded fact already ended, NX080 no space you may write, plus the validation codes of
record_episode. Any agent, on its own facts; with space, on the facts of a space it may write
(docs/spaces.md: one fact per key per space, whichever member wrote it).

MCP: Remember a lasting fact (about the user, the world, a decision), to recall later. Give a key
when the fact is the value of something that has one value at a time (where the user lives, their
employer): the new fact then replaces the one of that key, which stays in its history. The same text
again keeps one fact, with its tags and metadata merged. Returns the fact''s id.
- content: The fact, in plain words: not empty, up to 256 KiB. Example: "ACME pays its invoices late."
- metadata: Structured details, a JSON object up to 64 KiB (default {}), merged into those the fact
  has. Example: {"customer": "ACME"}.
- tags: Labels to filter by later: up to 64, each 1 to 64 characters (default none). Example: ["billing"].
- importance: How much it matters, from 0 to 1 (default 0.5); the higher one is kept. Example: 0.8.
- source_episode_id: The id of the episode the fact was learned from (default none). Example: 42.
- key: What the fact is the value of, 1 to 256 characters (default none): a new fact of a key
  replaces the one that held. Example: "user.city".
- supersedes: The id of a fact this one replaces, which must still hold (default none); for a fact
  without a key. Example: 12.
- valid_from: When the fact began to hold, if not now: a time in ISO 8601 (default now); a time in
  the key''s past inserts it into the history. Example: "2025-03-01T00:00:00Z".
- space: A shared space to keep the fact in instead of your own memory, one you may write (see the
  spaces tool; default: your own); a key then has one fact in the space. Example: "billing-team".';


CREATE OR REPLACE FUNCTION nexus.get_fact(
    fact_id          bigint DEFAULT NULL,
    key              text DEFAULT NULL,
    as_of            timestamptz DEFAULT NULL,
    include_history  boolean DEFAULT false,
    space            text DEFAULT NULL)
RETURNS TABLE (id bigint, content text, metadata jsonb, tags text[], importance real,
               source_episode_id bigint, created_at timestamptz, updated_at timestamptz,
               embedded boolean, fact_key text, valid_from timestamptz, valid_to timestamptz,
               ended_by text, ended_at timestamptz, superseded_by bigint, is_current boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_at    timestamptz := coalesce(as_of, now());
    -- the caller's own memory, or a space it may read (NX080 otherwise)
    v_agent text := memory_system._read_target(space);
BEGIN
    IF (fact_id IS NULL) = (key IS NULL) THEN
        RAISE EXCEPTION 'get_fact takes a fact_id or a key, not both' USING ERRCODE = 'NX031';
    END IF;
    IF as_of IS NOT NULL AND include_history THEN
        RAISE EXCEPTION 'as_of and include_history exclude each other' USING ERRCODE = 'NX031',
            HINT = 'include_history returns every fact, each with its validity.';
    END IF;
    PERFORM memory_system._check_fact_key(key);
    IF fact_id IS NOT NULL AND NOT EXISTS (
            SELECT FROM nexus_memory.semantic_memories AS s
             WHERE s.agent_id = v_agent AND s.id = fact_id) THEN
        RAISE EXCEPTION 'fact % not found', fact_id USING ERRCODE = 'NX033';
    END IF;
    RETURN QUERY
    WITH hits AS MATERIALIZED (
    SELECT f.* FROM memory_system._fact_rows(key, ARRAY[fact_id],
                                             CASE WHEN NOT coalesce(include_history, false) THEN v_at END,
                                             v_agent) AS f
     ORDER BY f.valid_from, f.valid_to IS NOT DISTINCT FROM f.valid_from DESC, f.id)
    -- the read record (docs/privacy.md): one call with the rows in order, as in memory_search
    SELECT h.* FROM hits AS h
     WHERE (SELECT memory_system._record_read('get_fact',
                       json_strip_nulls(json_build_object('fact_id', fact_id, 'key', key, 'as_of', as_of,
                           'include_history', include_history, 'space', space))::text,
                       array_agg('semantic'::text), array_agg(x.id))
              FROM hits AS x) IS NOT NULL;
END
$$;
COMMENT ON FUNCTION nexus.get_fact(bigint, text, timestamptz, boolean, text) IS
'A fact of the calling agent, by id or by key, if it holds now (valid_from <= now < valid_to), or at
as_of; no row if it does not. include_history: the fact whatever its validity, or every fact of the
key, oldest first. Each row has its validity, what ended it (ended_by: superseded or invalidated;
superseded_by) and is_current. Errors: NX031 neither or both of fact_id and key, or as_of with
include_history; NX033 unknown id (another agent''s is unknown too); NX036 bad key; NX080 no space
you may read. Any agent, on its own facts, or with space => NAME a shared space''s (docs/spaces.md).

MCP: Read what you know of something now: the fact of a key (or a fact by its id, as remember_fact
and recall give them) if it still holds, and whether it is embedded yet (searchable by meaning).
With as_of, what held at that time; with include_history, every fact of the key, each with when it
held and what ended it. Returns no row when nothing holds.
- fact_id: The fact''s id, a whole number (or give key). Example: 7.
- key: The key the fact was remembered with (or give fact_id). Example: "user.city".
- as_of: A past time to answer for instead of now, in ISO 8601 (default now). Example:
  "2024-06-01T00:00:00Z".
- include_history: true for every fact of the key, ended ones too (default false). Example: true.
- space: Read the fact in this shared space instead of your own memory (one you may read; see the
  spaces tool). Example: "billing-team".';


CREATE OR REPLACE FUNCTION nexus.delete_fact(fact_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM nexus_memory.semantic_memories AS s
         WHERE s.agent_id = (current_user::text COLLATE "default") AND s.id = delete_fact.fact_id
        RETURNING 1)
    SELECT EXISTS (SELECT FROM d)
$$;
COMMENT ON FUNCTION nexus.delete_fact(bigint) IS
'Deletes one of the calling agent''s facts with its vector and postings; true if it existed.

MCP: Forget one of your facts for good, by its id. Returns true if it was deleted, false if there was
no such fact.
- fact_id: The id of the fact to forget. Example: 7.';


CREATE OR REPLACE FUNCTION nexus.invalidate_fact(fact_id bigint, at timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_agent text;
    v_at    timestamptz := coalesce(at, now());
BEGIN
    PERFORM nexus.current_agent();
    -- the caller's own fact or one of a space it may write (docs/spaces.md)
    v_agent := (memory_system._fact_to_end(fact_id, v_at)).agent_id;
    UPDATE nexus_memory.semantic_memories AS s
       SET valid_to = v_at, ended_by = 'invalidated', ended_at = now()
     WHERE s.agent_id = v_agent AND s.id = fact_id;
    RETURN v_at;
END
$$;
COMMENT ON FUNCTION nexus.invalidate_fact(bigint, timestamptz) IS
'Ends one of the calling agent''s facts with nothing replacing it: it stops holding at `at` (default
now; a later time ends it then; at its valid_from, it never held) and stays in its history
(fact_history, get_fact with include_history). Returns the time it ends. Errors: NX033 unknown id
(another agent''s is unknown too), NX037 at before the fact began, NX038 the fact has already ended
(superseded or invalidated). Any agent, on its own facts and those of the spaces it may write.

MCP: Say that one of your facts stopped being true and nothing replaces it (to replace it, remember
the new fact with the same key). It is kept in the history. Returns when it stopped holding.
- fact_id: The id of the fact that no longer holds. Example: 7.
- at: When it stopped being true, in ISO 8601 (default now). Example: "2025-03-01T00:00:00Z".';


CREATE OR REPLACE FUNCTION nexus.fact_history(fact_id bigint DEFAULT NULL, key text DEFAULT NULL,
                                              space text DEFAULT NULL)
RETURNS TABLE (id bigint, content text, metadata jsonb, tags text[], importance real,
               source_episode_id bigint, created_at timestamptz, updated_at timestamptz,
               embedded boolean, fact_key text, valid_from timestamptz, valid_to timestamptz,
               ended_by text, ended_at timestamptz, superseded_by bigint, is_current boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    -- the caller's own memory, or a space it may read (NX080 otherwise)
    v_agent text := memory_system._read_target(space);
    v_key   text := key;
    v_ids   bigint[];
BEGIN
    IF (fact_id IS NULL) = (key IS NULL) THEN
        RAISE EXCEPTION 'fact_history takes a fact_id or a key, not both' USING ERRCODE = 'NX031';
    END IF;
    PERFORM memory_system._check_fact_key(key);
    IF fact_id IS NOT NULL THEN
        SELECT s.fact_key INTO v_key FROM nexus_memory.semantic_memories AS s
         WHERE s.agent_id = v_agent AND s.id = fact_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'fact % not found', fact_id USING ERRCODE = 'NX033';
        END IF;
        IF v_key IS NULL THEN
            -- an unkeyed fact: the chain of what superseded what, both ways
            WITH RECURSIVE back (fid) AS (
                SELECT fact_id
                UNION
                SELECT s.id FROM nexus_memory.semantic_memories AS s JOIN back AS b ON s.superseded_by = b.fid
                 WHERE s.agent_id = v_agent
            ), forth (fid) AS (
                SELECT fact_id
                UNION
                SELECT s.superseded_by FROM nexus_memory.semantic_memories AS s JOIN forth AS f ON s.id = f.fid
                 WHERE s.agent_id = v_agent AND s.superseded_by IS NOT NULL
            )
            SELECT array_agg(c.fid) INTO v_ids FROM (SELECT b.fid FROM back AS b UNION SELECT f.fid FROM forth AS f) AS c;
        END IF;
    END IF;
    RETURN QUERY
    WITH hits AS MATERIALIZED (
    SELECT f.* FROM memory_system._fact_rows(v_key, v_ids, NULL, v_agent) AS f
     ORDER BY f.valid_from, f.valid_to IS NOT DISTINCT FROM f.valid_from DESC, f.id)
    -- the read record (docs/privacy.md): one call with the rows in order, as in memory_search
    SELECT h.* FROM hits AS h
     WHERE (SELECT memory_system._record_read('fact_history',
                       json_strip_nulls(json_build_object('fact_id', fact_id, 'key', key, 'space', space))::text,
                       array_agg('semantic'::text), array_agg(x.id))
              FROM hits AS x) IS NOT NULL;
END
$$;
COMMENT ON FUNCTION nexus.fact_history(bigint, text, text) IS
'The history of a key of the calling agent, or of the fact with that id (its key''s history, or for
an unkeyed fact the chain of facts that superseded one another), oldest first (by valid_from; a fact
that never held before the one that replaced it as it began). Each row has its validity, what ended
it and is_current. An unknown key has no history. Errors: NX031 neither or both of fact_id and key,
NX033 unknown id (another agent''s is unknown too), NX036 bad key, NX080 no space you may read. Any
agent, on its own facts, or with space => NAME a shared space''s (docs/spaces.md).

MCP: The history of something you know: every fact of a key (or of the chain of the fact with that
id), oldest first, each with when it held, what ended it and which fact replaced it.
- fact_id: The id of any fact of the history (or give key). Example: 7.
- key: The key the facts were remembered with (or give fact_id). Example: "user.city".
- space: The history in this shared space instead of your own memory (one you may read; see the
  spaces tool). Example: "billing-team".';
