-- The store (LangGraph's BaseStore on NEXUS): put, get, delete. SECURITY INVOKER: row-level security
-- scopes every statement to the calling agent, whose identity is its role; two agents with the same
-- namespaces and keys have two different items.
-- An expired item (expires_at passed) is absent for every read at once; the workers' sweep
-- (memory_system.purge_expired_store_items) removes it with its texts, postings and vectors.

CREATE OR REPLACE FUNCTION memory_system._store_check_namespace(p_namespace text[], p_what text DEFAULT 'namespace',
                                                                p_empty_ok boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_namespace IS NULL OR (cardinality(p_namespace) = 0 AND NOT p_empty_ok) THEN
        RAISE EXCEPTION '% must have at least one label', p_what USING ERRCODE = 'NX060';
    END IF;
    IF cardinality(p_namespace) > 64 THEN
        RAISE EXCEPTION '% has % labels, at most 64', p_what, cardinality(p_namespace) USING ERRCODE = 'NX060';
    END IF;
    IF array_ndims(p_namespace) > 1 OR EXISTS (
            SELECT FROM unnest(p_namespace) AS l WHERE l IS NULL OR length(l) NOT BETWEEN 1 AND 256) THEN
        RAISE EXCEPTION '% labels must be non-empty strings of at most 256 characters', p_what
            USING ERRCODE = 'NX060', DETAIL = format('%s: %s', p_what, p_namespace);
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._store_check_namespace(text[], text, boolean) IS
'Internal: raises NX060 unless p_namespace is 1 to 64 labels (0 when p_empty_ok) of 1 to 256 characters.';


CREATE OR REPLACE FUNCTION memory_system._validate_store_item()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN
        PERFORM memory_system._check_agent(NEW.agent_id);
    END IF;
    PERFORM memory_system._store_check_namespace(NEW.namespace);
    IF NEW.key IS NULL OR length(NEW.key) > 1024 THEN
        RAISE EXCEPTION 'key must be a string of at most 1,024 characters' USING ERRCODE = 'NX060';
    END IF;
    IF NEW.value IS NULL THEN
        RAISE EXCEPTION 'value must be a JSON object, got NULL' USING ERRCODE = 'NX012';
    END IF;
    PERFORM memory_system._check_json_object('value', NEW.value, 1048576);
    IF NEW.ttl IS NOT NULL AND NEW.ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, got %', NEW.ttl USING ERRCODE = 'NX060';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_store_item() IS
'Trigger: validates a store item (agent NX001; namespace, key and ttl NX060; value a JSON object NX012
of at most 1 MiB NX011) and stamps updated_at on a write of its value.';

-- not on a refresh of expires_at alone: reading an item does not change it
CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE OF agent_id, namespace, key, value, ttl ON nexus_memory.store_items
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_store_item();


CREATE OR REPLACE FUNCTION memory_system._validate_store_text()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.path IS NULL OR length(NEW.path) NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION 'a text''s path must be 1 to 1,024 characters' USING ERRCODE = 'NX060';
    END IF;
    -- 256 KiB keeps the full-text vector of any text under its 1 MB limit, as for episodes
    PERFORM memory_system._check_size('text', octet_length(NEW.content), 262144);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_store_text() IS
'Trigger: validates a store text (path NX060, content at most 256 KiB NX011). Its item''s row-level
security and foreign key make it the caller''s own.';

CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE ON nexus_memory.store_texts
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_store_text();


CREATE OR REPLACE FUNCTION nexus.store_put(
    namespace  text[],
    key        text,
    value      jsonb,
    texts      jsonb DEFAULT NULL,
    ttl        interval DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_agent  text := nexus.current_agent();
    v_now    timestamptz := clock_timestamp();
    v_id     bigint;
BEGIN
    IF texts IS NOT NULL AND (jsonb_typeof(texts) <> 'object'
            OR EXISTS (SELECT FROM jsonb_each(texts) AS t WHERE jsonb_typeof(t.value) <> 'string')) THEN
        RAISE EXCEPTION 'texts must be a JSON object of path -> text (strings)' USING ERRCODE = 'NX060';
    END IF;
    IF (SELECT count(*) FROM jsonb_object_keys(texts)) > 1000 THEN
        RAISE EXCEPTION 'at most 1,000 texts per item' USING ERRCODE = 'NX060';
    END IF;
    -- an expired item is gone: putting its key again makes a new item (new created_at, new texts)
    DELETE FROM nexus_memory.store_items AS i
     WHERE i.agent_id = v_agent AND i.namespace = store_put.namespace AND i.key = store_put.key
       AND i.expires_at <= v_now;
    INSERT INTO nexus_memory.store_items AS i (namespace, key, value, created_at, updated_at, ttl, expires_at)
    VALUES (namespace, key, value, v_now, v_now, ttl, v_now + ttl)
    ON CONFLICT ON CONSTRAINT store_items_agent_id_namespace_key_key DO UPDATE
       SET value = EXCLUDED.value, ttl = EXCLUDED.ttl, expires_at = EXCLUDED.expires_at
    RETURNING i.id INTO v_id;
    -- the item's texts become exactly `texts`: a text whose content is unchanged keeps its vector,
    -- a changed one is re-indexed and re-embedded (its old vector is never shown for the new
    -- content), a path no longer given goes with its postings and vector
    DELETE FROM nexus_memory.store_texts AS t
     WHERE t.agent_id = v_agent AND t.item_id = v_id
       AND (texts IS NULL OR NOT texts ? t.path);
    INSERT INTO nexus_memory.store_texts AS t (item_id, path, content)
    SELECT v_id, x.key, x.value FROM jsonb_each_text(texts) AS x
    ON CONFLICT ON CONSTRAINT store_texts_agent_id_item_id_path_key DO UPDATE
       SET content = EXCLUDED.content
     WHERE t.content IS DISTINCT FROM EXCLUDED.content;
    RETURN v_now;
END
$$;
COMMENT ON FUNCTION nexus.store_put(text[], text, jsonb, jsonb, interval) IS
'Puts an item of the calling agent''s store (LangGraph BaseStore put): namespace (1 to 64 labels),
key, value (a JSON object). texts: the texts to search it by, {"path": "text", ...} (e.g.
{"content": "...", "facts.0": "..."}), indexed for BM25 at once and embedded in the background; NULL
for none. A re-put replaces value and texts (an unchanged text keeps its vector). ttl: the item
expires that long after its last write, or read with refresh (NULL: never). Returns the time written.
Errors: NX001 not an agent; NX060 bad namespace, key, texts or ttl; NX012 value not an object;
NX011 value over 1 MiB or a text over 256 KiB.';


CREATE OR REPLACE FUNCTION nexus.store_get(
    namespace    text[],
    key          text,
    refresh_ttl  boolean DEFAULT true)
RETURNS TABLE (value jsonb, created_at timestamptz, updated_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF refresh_ttl THEN
        RETURN QUERY
        UPDATE nexus_memory.store_items AS i
           SET expires_at = v_now + i.ttl
         WHERE i.agent_id = (current_user::text COLLATE "default")
           AND i.namespace = store_get.namespace AND i.key = store_get.key
           AND i.ttl IS NOT NULL AND i.expires_at > v_now
        RETURNING i.value, i.created_at, i.updated_at, i.expires_at;
    END IF;
    IF NOT (refresh_ttl AND FOUND) THEN
        RETURN QUERY
        SELECT i.value, i.created_at, i.updated_at, i.expires_at
          FROM nexus_memory.store_items AS i
         WHERE i.agent_id = (current_user::text COLLATE "default")
           AND i.namespace = store_get.namespace AND i.key = store_get.key
           AND (i.expires_at IS NULL OR i.expires_at > v_now);
    END IF;
    -- the read record (docs/privacy.md): the item returned, if any
    PERFORM memory_system._record_read('store_get', json_build_array(store_get.namespace, store_get.key)::text,
                                       array_agg('store_item'::text), array_agg(i.id))
       FROM nexus_memory.store_items AS i
      WHERE i.agent_id = (current_user::text COLLATE "default")
        AND i.namespace = store_get.namespace AND i.key = store_get.key
        AND (i.expires_at IS NULL OR i.expires_at > v_now);
END
$$;
COMMENT ON FUNCTION nexus.store_get(text[], text, boolean) IS
'One item of the calling agent''s store: its value, times and expiry, or no row when it is absent or
expired. refresh_ttl (default true): an item with a ttl expires ttl from now again.';


CREATE OR REPLACE FUNCTION nexus.store_delete(namespace text[], key text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (
        DELETE FROM nexus_memory.store_items AS i
         WHERE i.agent_id = (current_user::text COLLATE "default")
           AND i.namespace = store_delete.namespace AND i.key = store_delete.key
        RETURNING i.expires_at)
    SELECT EXISTS (SELECT FROM d WHERE d.expires_at IS NULL OR d.expires_at > clock_timestamp())
$$;
COMMENT ON FUNCTION nexus.store_delete(text[], text) IS
'Deletes an item of the calling agent''s store with its texts, postings, vectors and queued work;
true if it existed and had not expired.';


CREATE OR REPLACE FUNCTION memory_system.purge_expired_store_items(p_limit integer DEFAULT 10000)
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM nexus_memory.store_items AS i
         WHERE (i.agent_id, i.id) IN (
               SELECT x.agent_id, x.id FROM nexus_memory.store_items AS x
                WHERE x.expires_at <= clock_timestamp()
                ORDER BY x.expires_at LIMIT p_limit
                  FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
COMMENT ON FUNCTION memory_system.purge_expired_store_items(integer) IS
'Deletes up to p_limit expired store items of every agent, with their texts, postings, vectors and
queued work; returns how many. Run by the embedding workers at each heartbeat (expired items are
already invisible through the API). Callers: nexus_worker, operators.';
