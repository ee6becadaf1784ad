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
    valid_at     timestamptz DEFAULT NULL)
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
           (content, action_type, metadata, tags, importance, session_id, source, valid_at)
    VALUES (content, action_type, coalesce(metadata, '{}'), coalesce(tags, '{}'), importance, session,
            coalesce(source, 'text'), valid_at)
    RETURNING zep_episodic_memory.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.record_episode(text, text, jsonb, text[], real, text, text, timestamptz) IS
'Records an episode (an action, observation or message) of the calling agent and returns its id.
It is embedded in the background (see nexus.memory_stats). Errors: NX001 not an agent, NX031 no content
or bad action_type, NX011 content over 256 KiB / metadata over 64 KiB, NX012 metadata not an object,
NX015 empty or whitespace-only content, importance outside 0-1 or bad tags.

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
- valid_at: When it happened, if not now: an ISO 8601 date-time (default none). Example: "2025-06-01T09:30:00Z".';


CREATE OR REPLACE FUNCTION nexus.get_episode(episode_id bigint)
RETURNS TABLE (id bigint, episode_uuid uuid, session_id text, action_type text, source text, content text,
               metadata jsonb, tags text[], importance real, valid_at timestamptz, created_at timestamptz,
               updated_at timestamptz, embedded boolean)
LANGUAGE plpgsql STABLE
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
     WHERE e.agent_id = (current_user::text COLLATE "default") AND e.id = get_episode.episode_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'episode % not found', get_episode.episode_id USING ERRCODE = 'NX033';
    END IF;
END
$$;
COMMENT ON FUNCTION nexus.get_episode(bigint) IS
'One episode of the calling agent; embedded tells whether its current content has a vector.
Errors: NX033 not found (another agent''s episode is not found either).

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
     WHERE e.agent_id = (current_user::text COLLATE "default") AND e.id = update_episode.episode_id
    RETURNING e.updated_at INTO v_updated;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'episode % not found', update_episode.episode_id USING ERRCODE = 'NX033';
    END IF;
    RETURN v_updated;
END
$$;
COMMENT ON FUNCTION nexus.update_episode(bigint, text, jsonb, text[], real, text, text) IS
'Changes the given fields of one of the calling agent''s episodes (NULL leaves a field as it is) and
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
         WHERE e.agent_id = (current_user::text COLLATE "default") AND e.id = delete_episode.episode_id
        RETURNING 1)
    SELECT EXISTS (SELECT FROM d)
$$;
COMMENT ON FUNCTION nexus.delete_episode(bigint) IS
'Deletes one of the calling agent''s episodes with its vector, postings and queued work; true if it existed.

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
    before_id          bigint DEFAULT NULL)
RETURNS TABLE (id bigint, episode_uuid uuid, session_id text, action_type text, source text, content text,
               metadata jsonb, tags text[], importance real, valid_at timestamptz, created_at timestamptz,
               updated_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', limit_n USING ERRCODE = 'NX031';
    END IF;
    IF (before_created_at IS NULL) <> (before_id IS NULL) THEN
        RAISE EXCEPTION 'before_created_at and before_id go together (the last row of the previous page)'
            USING ERRCODE = 'NX031';
    END IF;
    RETURN QUERY
    SELECT e.id, e.episode_uuid, e.session_id, e.action_type, e.source, e.content, e.metadata, e.tags,
           e.importance, e.valid_at, e.created_at, e.updated_at
      FROM nexus_memory.zep_episodic_memory AS e
     WHERE e.agent_id = (current_user::text COLLATE "default")
       AND (session IS NULL OR e.session_id = session)
       AND (since IS NULL OR e.created_at >= since)
       AND (until IS NULL OR e.created_at < until)
       AND (tags_all IS NULL OR e.tags @> tags_all)
       AND (before_id IS NULL OR (e.created_at, e.id) < (before_created_at, before_id))
     ORDER BY e.created_at DESC, e.id DESC
     LIMIT limit_n;
END
$$;
COMMENT ON FUNCTION nexus.recent_episodes(integer, text, timestamptz, timestamptz, text[], timestamptz, bigint) IS
'The calling agent''s episodes, newest first, optionally of one session, a time range [since, until)
and carrying all of tags_all. Paged by keyset: pass the created_at and id of the last row of a page
to get the next. Errors: NX031 bad limit or half a page cursor.

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
  before_created_at. Example: 42.';


-- semantic memories -----------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.remember_fact(
    content            text,
    metadata           jsonb DEFAULT '{}',
    tags               text[] DEFAULT '{}',
    importance         real DEFAULT 0.5,
    source_episode_id  bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF nullif(btrim(content), '') IS NULL THEN
        RAISE EXCEPTION 'a fact needs content' USING ERRCODE = 'NX031';
    END IF;
    IF source_episode_id IS NOT NULL AND NOT EXISTS (
            SELECT FROM nexus_memory.zep_episodic_memory AS e
             WHERE e.agent_id = (current_user::text COLLATE "default") AND e.id = source_episode_id) THEN
        RAISE EXCEPTION 'episode % not found', source_episode_id USING ERRCODE = 'NX033';
    END IF;
    -- the same fact twice is one row: metadata merged, tags united, the higher importance kept
    INSERT INTO nexus_memory.semantic_memories AS s (content, metadata, tags, importance, source_episode_id)
    VALUES (content, coalesce(metadata, '{}'), coalesce(tags, '{}'), importance, source_episode_id)
    ON CONFLICT (agent_id, content_sha256) DO UPDATE
       SET metadata = s.metadata || EXCLUDED.metadata,
           tags = ARRAY(SELECT DISTINCT t FROM unnest(s.tags || EXCLUDED.tags) AS t ORDER BY t),
           importance = greatest(s.importance, EXCLUDED.importance),
           source_episode_id = coalesce(EXCLUDED.source_episode_id, s.source_episode_id)
    RETURNING s.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.remember_fact(text, jsonb, text[], real, bigint) IS
'Stores a fact (semantic memory) of the calling agent, deduplicated by content checksum: the same
content again returns the same id, with metadata merged, tags united and the higher importance.
Errors: NX031 empty content, NX033 unknown source episode, plus the validation codes of record_episode.

MCP: Remember a lasting fact (about the user, the world, a decision), to recall later. The same text
again keeps one fact, with its tags and metadata merged. Returns the fact''s id.
- content: The fact, in plain words: not empty, up to 256 KiB. Example: "ACME pays its invoices late."
- metadata: Structured details, a JSON object up to 64 KiB (default {}), merged into those the fact
  has. Example: {"customer": "ACME"}.
- tags: Labels to filter by later: up to 64, each 1 to 64 characters (default none). Example: ["billing"].
- importance: How much it matters, from 0 to 1 (default 0.5); the higher one is kept. Example: 0.8.
- source_episode_id: The id of the episode the fact was learned from (default none). Example: 42.';


CREATE OR REPLACE FUNCTION nexus.get_fact(fact_id bigint)
RETURNS TABLE (id bigint, content text, metadata jsonb, tags text[], importance real,
               source_episode_id bigint, created_at timestamptz, updated_at timestamptz, embedded boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    RETURN QUERY
    SELECT s.id, s.content, s.metadata, s.tags, s.importance, s.source_episode_id, s.created_at,
           s.updated_at,
           memory_system._embedded('semantic_memories', s.agent_id, s.id, s.content_sha256,
                                   memory_system._embedding_model())
      FROM nexus_memory.semantic_memories AS s
     WHERE s.agent_id = (current_user::text COLLATE "default") AND s.id = get_fact.fact_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fact % not found', get_fact.fact_id USING ERRCODE = 'NX033';
    END IF;
END
$$;
COMMENT ON FUNCTION nexus.get_fact(bigint) IS
'One fact (semantic memory) of the calling agent. Errors: NX033 not found.

MCP: Read one of your facts in full, by its id (remember_fact and recall give ids), and whether it is
embedded yet (searchable by meaning).
- fact_id: The fact''s id, a whole number. Example: 7.';


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
