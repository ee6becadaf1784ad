-- The BM25 inverted index (nexus_memory.text_postings) and corpus statistics (text_stats), kept in
-- step with the content of episodes, semantic memories and store texts by statement-level triggers.
-- They run as the owner: agents read their postings (row-level security) but never write them.

CREATE OR REPLACE FUNCTION memory_system._text_kind(p_table name)
RETURNS "char"
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE p_table WHEN 'zep_episodic_memory' THEN 'e' WHEN 'store_texts' THEN 't' ELSE 's' END::"char" $$;
COMMENT ON FUNCTION memory_system._text_kind(name) IS
'Internal: the postings kind of a memory table (e: episodes, s: semantic memories, t: store texts).';

CREATE OR REPLACE FUNCTION memory_system._text_kinds(p_table name)
RETURNS "char"[]
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE p_table WHEN 'semantic_memories' THEN '{s,h,f}'::"char"[]
                          ELSE ARRAY[memory_system._text_kind(p_table)] END $$;
COMMENT ON FUNCTION memory_system._text_kinds(name) IS
'Internal: every postings kind a memory table''s rows may have (a fact''s: s, h or f, memory_system._fact_kind).';

CREATE OR REPLACE FUNCTION memory_system._fact_kind(p_valid_from timestamptz, p_valid_to timestamptz)
RETURNS "char"
LANGUAGE sql STABLE
AS $$ SELECT CASE WHEN p_valid_to <= now() THEN 'h'
                  WHEN p_valid_to IS NOT NULL OR p_valid_from > now() THEN 'f' ELSE 's' END::"char" $$;
COMMENT ON FUNCTION memory_system._fact_kind(timestamptz, timestamptz) IS
'Internal: the postings kind of a fact by its validity now (migration 0022): s it holds and has no
end (it holds from now on until it ends), h it has ended (it never holds again), f a bound in the
future. "True now" search reads s without checking and never h.';

CREATE OR REPLACE FUNCTION memory_system._fact_postings_settle(p_agents text[], p_ids bigint[])
RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE nexus_memory.text_postings AS p SET kind = x.kind
      FROM (SELECT s.agent_id, s.id, t.lexeme, memory_system._fact_kind(s.valid_from, s.valid_to) AS kind
              FROM unnest(p_agents, p_ids) AS r(agent_id, id)
              JOIN nexus_memory.semantic_memories AS s ON s.agent_id = r.agent_id AND s.id = r.id,
                   memory_system._text_terms(s.content_tsv) AS t) AS x
     WHERE p.agent_id = x.agent_id AND p.lexeme = x.lexeme AND p.kind IN ('s', 'h', 'f')
       AND p.doc_id = x.id AND p.kind <> x.kind;
$$;
COMMENT ON FUNCTION memory_system._fact_postings_settle(text[], bigint[]) IS
'Internal (text-index triggers): puts the postings of the facts given under the kind of their
validity now (memory_system._fact_kind).';

CREATE OR REPLACE FUNCTION memory_system._text_terms(p_tsv tsvector)
RETURNS TABLE (lexeme text, tf integer, dl integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT l.lexeme, coalesce(array_length(l.positions, 1), 1),
           (sum(coalesce(array_length(l.positions, 1), 1)) OVER ())::integer
      FROM unnest(p_tsv) AS l
$$;
COMMENT ON FUNCTION memory_system._text_terms(tsvector) IS
'Internal: the lexemes of a tsvector with their frequency, and the document length in tokens.';


CREATE OR REPLACE FUNCTION memory_system._text_index_insert()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k "char" := memory_system._text_kind(TG_TABLE_NAME);
BEGIN
    WITH terms AS MATERIALIZED (
        SELECT n.agent_id, n.id, t.lexeme, t.tf, t.dl
          FROM new_rows AS n, memory_system._text_terms(n.content_tsv) AS t
    ), posted AS (
        INSERT INTO nexus_memory.text_postings (agent_id, lexeme, kind, doc_id, tf, dl)
        SELECT agent_id, lexeme, k, id, tf, dl FROM terms
    )
    INSERT INTO nexus_memory.text_stats AS s (agent_id, slot, docs, tokens)
    SELECT n.agent_id, (pg_backend_pid() % 8)::smallint, n.docs, coalesce(w.tokens, 0)
      FROM (SELECT agent_id, count(*) AS docs FROM new_rows GROUP BY agent_id) AS n
      LEFT JOIN (SELECT agent_id, sum(tf) AS tokens FROM terms GROUP BY agent_id) AS w USING (agent_id)
        ON CONFLICT (agent_id, slot) DO UPDATE
       SET docs = s.docs + EXCLUDED.docs, tokens = s.tokens + EXCLUDED.tokens;
    IF TG_TABLE_NAME = 'semantic_memories' THEN
        -- facts that do not simply hold from now on (ended, or a bound in the future)
        PERFORM memory_system._fact_postings_settle(array_agg(n.agent_id), array_agg(n.id))
           FROM new_rows AS n WHERE memory_system._fact_kind(n.valid_from, n.valid_to) <> 's'
          HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._text_index_insert() IS
'Trigger (statement, after INSERT): adds the new memories'' lexemes to the BM25 postings and counts them in text_stats.';


CREATE OR REPLACE FUNCTION memory_system._text_index_delete()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ks "char"[] := memory_system._text_kinds(TG_TABLE_NAME);
BEGIN
    WITH terms AS MATERIALIZED (
        SELECT o.agent_id, o.id, t.lexeme, t.tf
          FROM old_rows AS o, memory_system._text_terms(o.content_tsv) AS t
    ), unposted AS (
        DELETE FROM nexus_memory.text_postings AS p USING terms AS t
         WHERE p.agent_id = t.agent_id AND p.lexeme = t.lexeme AND p.kind = ANY (ks) AND p.doc_id = t.id
    )
    INSERT INTO nexus_memory.text_stats AS s (agent_id, slot, docs, tokens)
    SELECT o.agent_id, (pg_backend_pid() % 8)::smallint, -o.docs, -coalesce(w.tokens, 0)
      FROM (SELECT agent_id, count(*) AS docs FROM old_rows GROUP BY agent_id) AS o
      LEFT JOIN (SELECT agent_id, sum(tf) AS tokens FROM terms GROUP BY agent_id) AS w USING (agent_id)
        ON CONFLICT (agent_id, slot) DO UPDATE
       SET docs = s.docs + EXCLUDED.docs, tokens = s.tokens + EXCLUDED.tokens;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._text_index_delete() IS
'Trigger (statement, after DELETE): removes the deleted memories'' postings and uncounts them in text_stats.';


CREATE OR REPLACE FUNCTION memory_system._text_index_update()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k "char" := memory_system._text_kind(TG_TABLE_NAME);
    ks "char"[] := memory_system._text_kinds(TG_TABLE_NAME);
BEGIN
    -- only rows whose content changed (or that moved to another agent); three statements, so that
    -- a lexeme both old and new content have is deleted before it is inserted again
    DELETE FROM nexus_memory.text_postings AS p
     USING old_rows AS o JOIN new_rows AS n ON n.id = o.id,
           LATERAL memory_system._text_terms(o.content_tsv) AS t
     WHERE (o.content_sha256 IS DISTINCT FROM n.content_sha256 OR o.agent_id <> n.agent_id)
       AND p.agent_id = o.agent_id AND p.lexeme = t.lexeme AND p.kind = ANY (ks) AND p.doc_id = o.id;

    INSERT INTO nexus_memory.text_postings (agent_id, lexeme, kind, doc_id, tf, dl)
    SELECT n.agent_id, t.lexeme, k, n.id, t.tf, t.dl
      FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id,
           LATERAL memory_system._text_terms(n.content_tsv) AS t
     WHERE o.content_sha256 IS DISTINCT FROM n.content_sha256 OR o.agent_id <> n.agent_id;

    INSERT INTO nexus_memory.text_stats AS s (agent_id, slot, docs, tokens)
    SELECT d.agent_id, (pg_backend_pid() % 8)::smallint, sum(d.docs), sum(d.tokens)
      FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id,
           LATERAL (VALUES (n.agent_id, 1,
                            coalesce((SELECT sum(t.tf) FROM memory_system._text_terms(n.content_tsv) AS t), 0)),
                           (o.agent_id, -1,
                            -coalesce((SELECT sum(t.tf) FROM memory_system._text_terms(o.content_tsv) AS t), 0)))
                   AS d(agent_id, docs, tokens)
     WHERE o.content_sha256 IS DISTINCT FROM n.content_sha256 OR o.agent_id <> n.agent_id
     GROUP BY d.agent_id
        ON CONFLICT (agent_id, slot) DO UPDATE
       SET docs = s.docs + EXCLUDED.docs, tokens = s.tokens + EXCLUDED.tokens;
    IF TG_TABLE_NAME = 'semantic_memories' THEN
        -- facts re-indexed above (under s) or whose validity changed (superseded, invalidated)
        PERFORM memory_system._fact_postings_settle(array_agg(n.agent_id), array_agg(n.id))
           FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
          WHERE o.content_sha256 IS DISTINCT FROM n.content_sha256 OR o.agent_id <> n.agent_id
             OR o.valid_from IS DISTINCT FROM n.valid_from OR o.valid_to IS DISTINCT FROM n.valid_to
          HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._text_index_update() IS
'Trigger (statement, after UPDATE): re-indexes the memories whose content changed.';


CREATE OR REPLACE FUNCTION memory_system._text_index_truncate()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM nexus_memory.text_postings WHERE kind = ANY (memory_system._text_kinds(TG_TABLE_NAME));
    PERFORM memory_system.text_index_rebuild_stats();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._text_index_truncate() IS
'Trigger (after TRUNCATE): drops the table''s postings and recounts text_stats.';


CREATE OR REPLACE FUNCTION memory_system.text_index_rebuild_stats()
RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM nexus_memory.text_stats;
    INSERT INTO nexus_memory.text_stats (agent_id, slot, docs, tokens)
    SELECT m.agent_id, 0, count(*), coalesce(sum(m.dl), 0)
      FROM (SELECT e.agent_id, (SELECT sum(t.tf) FROM memory_system._text_terms(e.content_tsv) AS t) AS dl
              FROM nexus_memory.zep_episodic_memory AS e
            UNION ALL
            SELECT s.agent_id, (SELECT sum(t.tf) FROM memory_system._text_terms(s.content_tsv) AS t)
              FROM nexus_memory.semantic_memories AS s
            UNION ALL
            SELECT x.agent_id, (SELECT sum(t.tf) FROM memory_system._text_terms(x.content_tsv) AS t)
              FROM nexus_memory.store_texts AS x) AS m
     GROUP BY m.agent_id;
$$;
COMMENT ON FUNCTION memory_system.text_index_rebuild_stats() IS
'Operator: recounts the BM25 corpus statistics (text_stats) from the memory tables.';


DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['zep_episodic_memory', 'semantic_memories', 'store_texts'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER text_index_insert AFTER INSERT ON nexus_memory.%I '
                       'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
                       'EXECUTE FUNCTION memory_system._text_index_insert()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER text_index_delete AFTER DELETE ON nexus_memory.%I '
                       'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
                       'EXECUTE FUNCTION memory_system._text_index_delete()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER text_index_update AFTER UPDATE ON nexus_memory.%I '
                       'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
                       'EXECUTE FUNCTION memory_system._text_index_update()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER text_index_truncate AFTER TRUNCATE ON nexus_memory.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION memory_system._text_index_truncate()', t);
    END LOOP;
END
$$;
