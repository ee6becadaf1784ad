-- Triggers that turn writes of embedded tables into queue work.
-- INSERT: one set-based enqueue per statement (transition table), so bulk loads stay fast.
-- UPDATE: only when the content checksum changed. DELETE: the row's queue items go too.

CREATE OR REPLACE FUNCTION memory_system._embedding_model()
RETURNS text
LANGUAGE sql
STABLE
AS $$ SELECT value FROM memory_system.settings WHERE name = 'embedding_model' $$;
COMMENT ON FUNCTION memory_system._embedding_model() IS
'The model new embedding work targets (memory_system.settings). Internal.';

CREATE OR REPLACE FUNCTION memory_system._embedded_version(p_source_table text, p_agent_id text,
                                                           p_source_id bigint, p_sha256 bytea,
                                                           p_model text)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT CASE p_source_table
        WHEN 'zep_episodic_memory' THEN (
            SELECT model_version FROM nexus_memory.episode_embeddings
             WHERE agent_id = p_agent_id AND episode_id = p_source_id
               AND content_sha256 = p_sha256 AND model = p_model)
        WHEN 'semantic_memories' THEN (
            SELECT model_version FROM nexus_memory.semantic_memory_embeddings
             WHERE agent_id = p_agent_id AND memory_id = p_source_id
               AND content_sha256 = p_sha256 AND model = p_model)
        WHEN 'store_texts' THEN (
            SELECT model_version FROM nexus_memory.store_text_embeddings
             WHERE agent_id = p_agent_id AND text_id = p_source_id
               AND content_sha256 = p_sha256 AND model = p_model)
    END
$$;
COMMENT ON FUNCTION memory_system._embedded_version(text, text, bigint, bytea, text) IS
'The model version (so the precision) of a memory''s vector of p_model for the content with
checksum p_sha256; NULL if it has none. Internal.';

CREATE OR REPLACE FUNCTION memory_system._embedded(p_source_table text, p_agent_id text,
                                                   p_source_id bigint, p_sha256 bytea, p_model text)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT memory_system._embedded_version(p_source_table, p_agent_id, p_source_id, p_sha256,
                                           p_model) IS NOT NULL
$$;
COMMENT ON FUNCTION memory_system._embedded(text, text, bigint, bytea, text) IS
'Whether a memory already has a vector of p_model for the content with checksum p_sha256. Internal.';

CREATE OR REPLACE FUNCTION memory_system._enqueue_inserted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model text := memory_system._embedding_model();
BEGIN
    INSERT INTO memory_system.embeddings_queue (agent_id, source_table, source_id, content_sha256, model)
    SELECT n.agent_id, TG_TABLE_NAME, n.id, n.content_sha256, v_model
      FROM new_rows AS n;
    IF FOUND THEN
        PERFORM pg_notify('nexus_embeddings', '');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._enqueue_inserted() IS
'Statement trigger: enqueues embedding work for every inserted row, and wakes idle workers
(NOTIFY nexus_embeddings).';

CREATE OR REPLACE FUNCTION memory_system._enqueue_updated()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_model text := memory_system._embedding_model();
BEGIN
    -- back to content that is already embedded (A -> B -> A): nothing to do but drop pending work
    IF memory_system._embedded(TG_TABLE_NAME, NEW.agent_id, NEW.id, NEW.content_sha256, v_model) THEN
        DELETE FROM memory_system.embeddings_queue
         WHERE source_table = TG_TABLE_NAME AND source_id = NEW.id AND state = 'pending';
        RETURN NULL;
    END IF;
    -- a pending item for older content is superseded in place: the old content is never embedded
    INSERT INTO memory_system.embeddings_queue AS q
           (agent_id, source_table, source_id, content_sha256, model)
    VALUES (NEW.agent_id, TG_TABLE_NAME, NEW.id, NEW.content_sha256, v_model)
    ON CONFLICT (source_table, source_id) WHERE state = 'pending'
    DO UPDATE SET content_sha256 = EXCLUDED.content_sha256,
                  model = EXCLUDED.model,
                  enqueued_at = now(),
                  available_at = now(),
                  retry_count = 0,
                  last_error = NULL;
    PERFORM pg_notify('nexus_embeddings', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._enqueue_updated() IS
'Row trigger on content changes: enqueues work for the new content, superseding a pending item
for older content in place, and wakes idle workers.';

CREATE OR REPLACE FUNCTION memory_system._dequeue_deleted()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM memory_system.embeddings_queue AS q
     USING old_rows AS o
     WHERE q.source_table = TG_TABLE_NAME AND q.source_id = o.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._dequeue_deleted() IS
'Statement trigger: deleting source rows removes their queue items.';

CREATE OR REPLACE TRIGGER enqueue_inserted
    AFTER INSERT ON nexus_memory.zep_episodic_memory
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._enqueue_inserted();
CREATE OR REPLACE TRIGGER enqueue_updated
    AFTER UPDATE OF content ON nexus_memory.zep_episodic_memory
    FOR EACH ROW WHEN (OLD.content_sha256 IS DISTINCT FROM NEW.content_sha256)
    EXECUTE FUNCTION memory_system._enqueue_updated();
CREATE OR REPLACE TRIGGER dequeue_deleted
    AFTER DELETE ON nexus_memory.zep_episodic_memory
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._dequeue_deleted();

CREATE OR REPLACE TRIGGER enqueue_inserted
    AFTER INSERT ON nexus_memory.semantic_memories
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._enqueue_inserted();
CREATE OR REPLACE TRIGGER enqueue_updated
    AFTER UPDATE OF content ON nexus_memory.semantic_memories
    FOR EACH ROW WHEN (OLD.content_sha256 IS DISTINCT FROM NEW.content_sha256)
    EXECUTE FUNCTION memory_system._enqueue_updated();
CREATE OR REPLACE TRIGGER dequeue_deleted
    AFTER DELETE ON nexus_memory.semantic_memories
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._dequeue_deleted();

CREATE OR REPLACE TRIGGER enqueue_inserted
    AFTER INSERT ON nexus_memory.store_texts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._enqueue_inserted();
CREATE OR REPLACE TRIGGER enqueue_updated
    AFTER UPDATE OF content ON nexus_memory.store_texts
    FOR EACH ROW WHEN (OLD.content_sha256 IS DISTINCT FROM NEW.content_sha256)
    EXECUTE FUNCTION memory_system._enqueue_updated();
CREATE OR REPLACE TRIGGER dequeue_deleted
    AFTER DELETE ON nexus_memory.store_texts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._dequeue_deleted();
