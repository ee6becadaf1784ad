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
NX015 empty or whitespace-only content, importance outside 0-1 or bad tags.';


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
Errors: NX033 not found (another agent''s episode is not found either).';


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
and the old vector is never shown for the new content. Errors: NX033 not found, plus those of record_episode.';


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
'Deletes one of the calling agent''s episodes with its vector, postings and queued work; true if it existed.';


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
to get the next. Errors: NX031 bad limit or half a page cursor.';


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
Errors: NX031 empty content, NX033 unknown source episode, plus the validation codes of record_episode.';


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
'One fact (semantic memory) of the calling agent. Errors: NX033 not found.';


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
'Deletes one of the calling agent''s facts with its vector and postings; true if it existed.';
