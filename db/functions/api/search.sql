-- Hybrid search: BM25 over the postings table and HNSW over the agent's vector partition, fused by
-- Reciprocal Rank Fusion. SECURITY INVOKER: row-level security scopes every read to the caller;
-- the explicit agent_id = (current_user::text COLLATE "default") conditions only let the planner use the indexes for it.

CREATE OR REPLACE FUNCTION nexus._search_kinds(p_kinds text[])
RETURNS "char"[]
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    bad text;
BEGIN
    IF p_kinds IS NULL OR cardinality(p_kinds) = 0 THEN
        RAISE EXCEPTION 'kinds must name at least one of episode, semantic, store' USING ERRCODE = 'NX031';
    END IF;
    SELECT k INTO bad FROM unnest(p_kinds) AS k WHERE k IS NULL OR k NOT IN ('episode', 'semantic', 'store') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown memory kind %, expected episode, semantic or store', coalesce(quote_literal(bad), 'NULL')
            USING ERRCODE = 'NX031';
    END IF;
    RETURN ARRAY(SELECT DISTINCT CASE k WHEN 'episode' THEN 'e' WHEN 'store' THEN 't' ELSE 's' END::"char"
                   FROM unnest(p_kinds) AS k);
END
$$;
COMMENT ON FUNCTION nexus._search_kinds(text[]) IS
'Internal: validates a list of memory kinds (episode, semantic, store; NX031) and returns their postings codes.';


CREATE OR REPLACE FUNCTION nexus._search_valid_time(p_as_of timestamptz, p_include_history boolean)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF p_as_of IS NOT NULL AND p_include_history THEN
        RAISE EXCEPTION 'as_of and include_history exclude each other' USING ERRCODE = 'NX031',
            HINT = 'include_history returns every fact, each with its validity.';
    END IF;
    RETURN CASE WHEN coalesce(p_include_history, false) THEN NULL ELSE coalesce(p_as_of, now()) END;
END
$$;
COMMENT ON FUNCTION nexus._search_valid_time(timestamptz, boolean) IS
'Internal: the valid time a search keeps facts at (docs/facts.md): as_of, else now; NULL with
include_history (every fact). NX031 if both are given.';


CREATE OR REPLACE FUNCTION nexus._memory_filter(
    p_created_at         timestamptz,
    p_tags               text[],
    p_metadata           jsonb,
    p_since              timestamptz,
    p_until              timestamptz,
    p_tags_all           text[],
    p_metadata_contains  jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    -- no SET clause, not STRICT, one expression: inlined into the caller's statement, so that
    -- the indexes on tags and metadata still serve it
    SELECT (p_since IS NULL OR p_created_at >= p_since)
       AND (p_until IS NULL OR p_created_at < p_until)
       AND (p_tags_all IS NULL OR p_tags @> p_tags_all)
       AND (p_metadata_contains IS NULL OR p_metadata @> p_metadata_contains)
$$;
COMMENT ON FUNCTION nexus._memory_filter(timestamptz, text[], jsonb, timestamptz, timestamptz, text[], jsonb) IS
'Internal: whether a memory (its created_at, tags, metadata) passes the filters of
nexus.memory_search and nexus.forget: since <= created_at < until, carries every tag of tags_all,
metadata contains metadata_contains (each NULL: no condition). The session filter is the
episodes'' own (facts and store items belong to none).';


CREATE OR REPLACE FUNCTION nexus.text_candidates(
    query       text,
    kinds       text[] DEFAULT '{episode,semantic}',
    candidates  integer DEFAULT 100,
    df_budget   integer DEFAULT 10000,
    k1          float8 DEFAULT 1.2,
    b           float8 DEFAULT 0.75,
    as_of            timestamptz DEFAULT NULL,
    include_history  boolean DEFAULT false,
    agent_ids        text[] DEFAULT NULL)
RETURNS TABLE (kind "char", id bigint, score float8)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- the memories searched: the caller's own, or those nexus._search_scope gave (spaces)
    v_agents text[] := coalesce(agent_ids, ARRAY[current_user::text]);
    v_kinds  "char"[] := nexus._search_kinds(kinds);
    v_docs   float8;
    v_avgdl  float8;
    -- BM25's weight is wt * tf / (tf + v_c1 + v_c2 * dl), wt = idf * (k1 + 1): constants per query
    v_c1     float8;
    v_c2     float8;
    -- postings counted exactly per term (and kind) when pruning; longer lists are estimated
    v_cap    bigint := CASE WHEN df_budget IS NULL THEN NULL ELSE 256 END;
    -- facts count if they hold at v_at (NULL: all). "Now": postings s hold, h never will, f checked
    v_at     timestamptz := nexus._search_valid_time(as_of, include_history);
    v_now    boolean := v_at >= now();
BEGIN
    IF candidates IS NULL OR candidates NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'candidates must be between 1 and 1000, got %', candidates USING ERRCODE = 'NX031';
    END IF;
    IF df_budget IS NOT NULL AND df_budget < 1 THEN
        RAISE EXCEPTION 'df_budget must be positive, got %', df_budget USING ERRCODE = 'NX031';
    END IF;
    SELECT sum(s.docs), sum(s.tokens)::float8 / nullif(sum(s.docs), 0)
      INTO v_docs, v_avgdl
      FROM nexus_memory.text_stats AS s WHERE s.agent_id = ANY (v_agents);
    IF coalesce(v_docs, 0) <= 0 OR coalesce(v_avgdl, 0) <= 0 THEN
        RETURN;
    END IF;
    v_c1 := k1 * (1 - b);
    v_c2 := k1 * b / v_avgdl;
    IF 's' = ANY (v_kinds) THEN
        v_kinds := v_kinds || CASE WHEN v_now THEN '{f}' ELSE '{h,f}' END::"char"[];
    END IF;
    RETURN QUERY
    WITH terms AS (
        -- the query's distinct lexemes (stemmed, stop words gone): OR semantics
        SELECT DISTINCT l.lexeme FROM unnest(to_tsvector('english'::regconfig, query)) AS l
    ), df AS MATERIALIZED (
        -- document frequency, once per term (inlined, it would run again wherever df is used). With
        -- a budget, a list longer than v_cap is not counted to its end: its length is extrapolated
        -- from where its v_cap-th posting falls between its first and last (doc_ids grow with time)
        SELECT t.lexeme, sum(c.df) AS df
          FROM terms AS t
         CROSS JOIN unnest(v_kinds) AS k(kind)
         CROSS JOIN unnest(v_agents) AS a(agent_id)
         CROSS JOIN LATERAL (
                SELECT CASE WHEN v_cap IS NULL OR h.n < v_cap OR h.nth = h.first THEN h.n
                            ELSE greatest(h.n, round((h.n - 1) * (l.last - h.first)::float8 / (h.nth - h.first)) + 1)
                       END AS df
                  FROM (SELECT count(*) AS n, min(p.doc_id) AS first, max(p.doc_id) AS nth
                          FROM (SELECT p.doc_id FROM nexus_memory.text_postings AS p
                                 WHERE p.agent_id = a.agent_id AND p.lexeme = t.lexeme AND p.kind = k.kind
                                 ORDER BY p.doc_id LIMIT v_cap) AS p) AS h
                  LEFT JOIN LATERAL (
                        SELECT p.doc_id AS last FROM nexus_memory.text_postings AS p
                         WHERE h.n >= v_cap AND p.agent_id = a.agent_id AND p.lexeme = t.lexeme AND p.kind = k.kind
                         ORDER BY p.doc_id DESC LIMIT 1) AS l ON true) AS c
         GROUP BY t.lexeme
    ), ranked AS MATERIALIZED (
        -- rarest terms first, while their postings fit the budget; the rarest one always
        SELECT d.lexeme, ln(1 + (v_docs - d.df + 0.5) / (d.df + 0.5)) * (k1 + 1) AS wt,
               df_budget IS NULL OR d.running <= df_budget OR d.n = 1 AS kept
          FROM (SELECT d.*, sum(d.df) OVER (ORDER BY d.df, d.lexeme) AS running,
                       row_number() OVER (ORDER BY d.df, d.lexeme) AS n
                  FROM df AS d WHERE d.df > 0) AS d
    ), scored AS MATERIALIZED (
        -- the kept terms find the candidates: index-only scans of their postings
        SELECT p.kind, p.doc_id,
               sum(k.wt * p.tf / (p.tf + v_c1 + v_c2 * p.dl)) AS score
          FROM ranked AS k
          JOIN nexus_memory.text_postings AS p
            ON p.agent_id = ANY (v_agents) AND p.lexeme = k.lexeme AND p.kind = ANY (v_kinds)
         WHERE k.kept
         GROUP BY p.kind, p.doc_id
         ORDER BY score DESC, p.doc_id
         -- with pruning, a larger pool is rescored with the pruned terms below; with facts
         -- that may not hold, a larger pool keeps the candidates full once they are left out
         LIMIT CASE WHEN df_budget IS NULL AND v_at IS NULL THEN candidates ELSE candidates * 3 END
    ), rescored AS (
        -- the pruned (common) terms still count for the pool: per term one index scan for the
        -- pool's ids (not a read of the term's whole postings, which the planner would choose)
        SELECT p.kind, p.doc_id, sum(k.wt * p.tf / (p.tf + v_c1 + v_c2 * p.dl)) AS extra
          FROM ranked AS k
         CROSS JOIN LATERAL (
                SELECT p.kind, p.doc_id, p.tf, p.dl FROM nexus_memory.text_postings AS p
                 WHERE p.agent_id = ANY (v_agents) AND p.lexeme = k.lexeme AND p.kind = ANY (v_kinds)
                   AND p.doc_id = ANY (ARRAY(SELECT s.doc_id FROM scored AS s))) AS p
         WHERE NOT k.kept
         GROUP BY p.kind, p.doc_id
    )
    SELECT CASE WHEN f.kind IN ('h', 'f') THEN 's' ELSE f.kind END::"char", f.doc_id, f.score
      FROM (SELECT s.kind, s.doc_id, s.score + coalesce(r.extra, 0) AS score
              FROM scored AS s
              LEFT JOIN rescored AS r ON r.kind = s.kind AND r.doc_id = s.doc_id
             ORDER BY score DESC, s.doc_id
            OFFSET 0) AS f
     -- a fact that does not hold at v_at takes no candidate's place: checked best first (OFFSET
     -- 0 keeps the check above the sort), only until the candidates are complete
     WHERE v_at IS NULL OR f.kind NOT IN ('s', 'h', 'f') OR (f.kind = 's' AND v_now)
        OR EXISTS (SELECT FROM nexus_memory.semantic_memories AS s
                    WHERE s.agent_id = ANY (v_agents) AND s.id = f.doc_id
                      AND s.valid_from <= v_at AND (s.valid_to IS NULL OR s.valid_to > v_at))
     ORDER BY f.score DESC, f.doc_id
     LIMIT candidates;
END
$$;
COMMENT ON FUNCTION nexus.text_candidates(text, text[], integer, integer, float8, float8, timestamptz,
                                          boolean, text[]) IS
'BM25 over the calling agent''s memories for a natural-language query: OR of its stemmed terms,
IDF from the agent''s own corpus at query time. df_budget (default 10,000) bounds the postings read:
the rarest terms whose postings fit it find the candidates (the rarest term always), and the common
terms left out only rescore the best 3 x candidates of them; with a budget, a term''s document
frequency over 256 postings is estimated from the spread of its ids. NULL: exact BM25, every
posting read. Facts that do not hold now (or at as_of) take no place among the candidates (they
are left out of a pool of 3 x candidates, best first); include_history => true keeps every fact
(docs/facts.md). agent_ids: the memories searched as one corpus, the caller''s own and spaces''
(docs/spaces.md; default the caller''s own); rows the caller may not read stay unseen.
"Now" needs no check of a fact whose postings are of kind s and never reads those
of kind h (a fact''s postings follow its validity, migration 0022).
Returns (kind e|s|t (store texts), id, score), best first. Used by nexus.memory_search; errors NX031
(as_of with include_history too).';


CREATE OR REPLACE FUNCTION nexus._memory_search_text(
    p_query              text,
    p_kinds              "char"[],
    p_text_mode          text,
    p_candidates         integer,
    p_df_budget          integer,
    p_session            text,
    p_since              timestamptz,
    p_until              timestamptz,
    p_tags_all           text[],
    p_metadata_contains  jsonb,
    p_at                 timestamptz,
    p_agents             text[],
    OUT kinds            "char"[],
    OUT ids              bigint[],
    OUT scores           float8[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_filtered  boolean := p_session IS NOT NULL OR p_since IS NOT NULL OR p_until IS NOT NULL
                           OR p_tags_all IS NOT NULL OR p_metadata_contains IS NOT NULL;
    v_tsq       tsquery;
BEGIN
    IF p_text_mode = 'natural' THEN
        SELECT coalesce(array_agg(c.kind ORDER BY c.ord), '{}'), coalesce(array_agg(c.id ORDER BY c.ord), '{}'),
               coalesce(array_agg(c.score ORDER BY c.ord), '{}')
          INTO kinds, ids, scores
          FROM (SELECT c.*, row_number() OVER (ORDER BY c.score DESC, c.id) AS ord
                  FROM nexus.text_candidates(p_query,
                           ARRAY(SELECT CASE k WHEN 'e' THEN 'episode' WHEN 't' THEN 'store' ELSE 'semantic' END
                                   FROM unnest(p_kinds) AS k),
                           CASE WHEN v_filtered THEN 1000 ELSE p_candidates END, p_df_budget,
                           as_of => p_at, include_history => p_at IS NULL, agent_ids => p_agents) AS c) AS c
         WHERE NOT v_filtered
            OR (c.kind = 'e' AND EXISTS (
                    SELECT FROM nexus_memory.zep_episodic_memory AS e
                     WHERE e.agent_id = ANY (p_agents) AND e.id = c.id
                       AND (p_session IS NULL OR e.session_id = p_session)
                       AND nexus._memory_filter(e.created_at, e.tags, e.metadata, p_since, p_until, p_tags_all,
                                                p_metadata_contains)))
            OR (c.kind = 's' AND EXISTS (
                    SELECT FROM nexus_memory.semantic_memories AS s
                     WHERE s.agent_id = ANY (p_agents) AND s.id = c.id
                       AND nexus._memory_filter(s.created_at, s.tags, s.metadata, p_since, p_until, p_tags_all,
                                                p_metadata_contains)));
        IF cardinality(ids) > p_candidates THEN
            kinds := kinds[1:p_candidates]; ids := ids[1:p_candidates]; scores := scores[1:p_candidates];
        END IF;
    ELSE
        v_tsq := websearch_to_tsquery('english'::regconfig, p_query);
        SELECT coalesce(array_agg(c.kind ORDER BY c.score DESC, c.id), '{}'),
               coalesce(array_agg(c.id ORDER BY c.score DESC, c.id), '{}'),
               coalesce(array_agg(c.score ORDER BY c.score DESC, c.id), '{}')
          INTO kinds, ids, scores
          FROM (SELECT * FROM (
                  SELECT 'e'::"char" AS kind, e.id, ts_rank(e.content_tsv, v_tsq, 1)::float8 AS score
                    FROM nexus_memory.zep_episodic_memory AS e
                   WHERE 'e' = ANY (p_kinds) AND e.agent_id = ANY (p_agents) AND e.content_tsv @@ v_tsq
                     AND (p_session IS NULL OR e.session_id = p_session)
                     AND nexus._memory_filter(e.created_at, e.tags, e.metadata, p_since, p_until, p_tags_all,
                                              p_metadata_contains)
                  UNION ALL
                  SELECT 's', s.id, ts_rank(s.content_tsv, v_tsq, 1)::float8
                    FROM nexus_memory.semantic_memories AS s
                   WHERE 's' = ANY (p_kinds) AND s.agent_id = ANY (p_agents) AND s.content_tsv @@ v_tsq
                     AND (p_at IS NULL OR (s.valid_from <= p_at AND (s.valid_to IS NULL OR s.valid_to > p_at)))
                     AND nexus._memory_filter(s.created_at, s.tags, s.metadata, p_since, p_until, p_tags_all,
                                              p_metadata_contains)) AS u
                 ORDER BY u.score DESC, u.id LIMIT p_candidates) AS c;
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._memory_search_text(text, "char"[], text, integer, integer, text, timestamptz,
                                              timestamptz, text[], jsonb, timestamptz, text[]) IS
'Internal: the text branch of nexus.memory_search, arguments checked by it. natural: BM25
(text_candidates), with filters the matches among its best 1,000; websearch: websearch_to_tsquery
over content_tsv, ranked by ts_rank. Facts that do not hold at p_at are left out before ranking
(p_at NULL: none is). p_agents: the memories searched (own and spaces, nexus._search_scope).
Returns the best p_candidates as parallel arrays (kind e|s|t, id, score), best first.';


CREATE OR REPLACE FUNCTION nexus._memory_search_vector(
    p_embedding          public.vector,
    p_kinds              "char"[],
    p_candidates         integer,
    p_session            text,
    p_since              timestamptz,
    p_until              timestamptz,
    p_tags_all           text[],
    p_metadata_contains  jsonb,
    p_at                 timestamptz,
    p_agents             text[],
    OUT kinds            "char"[],
    OUT ids              bigint[],
    OUT dists            float8[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = '100'
AS $$
DECLARE
    v_agent     text;
    -- candidates per memory's graph: all for one memory; twice its share with spaces (docs/spaces.md)
    v_per       integer := CASE WHEN cardinality(p_agents) > 1 THEN ceil(2.0 * p_candidates / cardinality(p_agents))::integer ELSE p_candidates END;
    v_filtered  boolean := p_session IS NOT NULL OR p_since IS NOT NULL OR p_until IS NOT NULL
                           OR p_tags_all IS NOT NULL OR p_metadata_contains IS NOT NULL;
    v_rows      float8;
    v_exact     boolean;
    v_branches  text[] := '{}';
    v_k         record;
BEGIN
    SELECT max(s.docs) INTO v_rows  -- the largest of the memories searched (own, spaces)
      FROM (SELECT sum(docs) AS docs FROM nexus_memory.text_stats WHERE agent_id = ANY (p_agents) GROUP BY agent_id) AS s;
    -- a branch of N candidates needs ef_search >= N, or HNSW silently returns fewer; beyond
    -- that, recall needs ef_search to grow with the log of the agent's size: N (at least 100)
    -- times 1 + log10(memories / 10,000), at most 1,000. With the default 100 candidates, on
    -- the benchmark's graphs (ef_construction 128), recall@10: 10,000 memories at 100, 0.996
    -- (0.999 at 200, which took 60% longer); 100,000 at 200, 1.00; 1,000,000 at 300, 0.98-0.996
    -- (200 finds 0.967-0.983). Set for this function's call only (its SET clause restores it).
    PERFORM set_config('hnsw.ef_search', least(round(greatest(v_per, CASE WHEN cardinality(p_agents) > 1 THEN 40 ELSE 100 END)
                           * (1 + log(greatest(coalesce(v_rows, 0), 10000) / 10000.0))), 1000)::text, true);
    -- An agent whose rows are a small share of its partition is scanned exactly: filtered by
    -- agent, the HNSW scan would walk the whole graph (hundreds of ms at 1% of a million
    -- rows), while its own rows are few. Since migration 0010 every registered agent has a
    -- partition of its own, so this is only for rows in the DEFAULT partition.
    -- The statement is built for this call and planned once (EXECUTE): only the kinds asked
    -- for, the agent as a constant, the filters only if any. The planner prunes to the agent's
    -- partition at planning. A cached plan would hold every agent's partition (and lock them
    -- all at each run) or be planned again at each change of role, as row security requires.
    -- $1 query vector, $2 model, $3 session, $4 since, $5 until, $6 tags_all,
    -- $7 metadata_contains, $8 candidates, $9 the valid time facts must hold at.
    FOR v_k IN SELECT * FROM (VALUES
            ('e'::"char", 'episode_embeddings', 'episode_id', 'zep_episodic_memory',
             'AND ($3::text IS NULL OR m.session_id = $3)'),
            -- semantic memories belong to no session (kinds drops them when one is given)
            ('s'::"char", 'semantic_memory_embeddings', 'memory_id', 'semantic_memories', ''),
            ('t'::"char", 'store_text_embeddings', 'text_id', 'store_texts', ''))
            AS v(kind, tbl, idcol, src, session_cond)
            WHERE v.kind = ANY (p_kinds) ORDER BY v.kind LOOP
      FOREACH v_agent IN ARRAY p_agents LOOP  -- a branch per memory searched: its own partition and graph
        -- the agent's partition, by name (not through the partitioned table, whose plan
        -- would scan every agent's); an agent without one has its rows in the DEFAULT
        v_exact := false;
        IF coalesce(v_rows, 0) <= 20000 THEN
            SELECT coalesce(v_rows, 0) * 10 < c.reltuples INTO v_exact
              FROM pg_catalog.pg_class AS c
             WHERE c.relnamespace = 'nexus_parts'::regnamespace
               AND c.relname IN (memory_system._vector_partition(v_k.tbl, v_agent), v_k.tbl || '_default')
             ORDER BY c.relname = v_k.tbl || '_default' LIMIT 1;
        END IF;
        -- a vector of content since changed is not shown (its re-embedding is queued);
        -- checked around the scan, so that it stays an index scan
        v_branches := v_branches || format($q$(
            SELECT b.* FROM (
                SELECT %2$L::"char" AS kind, x.%4$I AS id,
                       x.embedding OPERATOR(public.<=>) $1 AS dist, x.content_sha256 AS sha
                  FROM nexus_memory.%3$I AS x
                 WHERE x.agent_id = %1$L AND x.model = $2 %6$s %8$s
                 ORDER BY %7$s LIMIT %10$s) AS b
             WHERE %9$s)$q$,
            v_agent, v_k.kind, v_k.tbl, v_k.idcol, v_k.src,
            CASE WHEN v_filtered THEN format($q$AND EXISTS (
                    SELECT FROM nexus_memory.%1$I AS m
                     WHERE m.agent_id = x.agent_id AND m.id = x.%2$I %3$s
                       AND nexus._memory_filter(m.created_at, m.tags, m.metadata, $4, $5, $6, $7))$q$,
                 v_k.src, v_k.idcol, v_k.session_cond)
                 ELSE '' END,
            -- exact: an ORDER BY the HNSW index cannot serve
            CASE WHEN v_exact THEN '(x.embedding OPERATOR(public.<=>) $1) + 0'
                 ELSE 'x.embedding OPERATOR(public.<=>) $1' END,
            -- a fact that does not hold at $9 takes no place: checked inside the scan, row by row
            -- (a scalar subquery: an EXISTS would become a join, and the join a scan of them all),
            -- with its vector's content, in the same probe
            CASE WHEN v_k.kind = 's' AND p_at IS NOT NULL THEN $q$AND (
                    SELECT v.content_sha256 = x.content_sha256
                           AND v.valid_from <= $9 AND (v.valid_to IS NULL OR v.valid_to > $9)
                      FROM nexus_memory.semantic_memories AS v
                     WHERE v.agent_id = x.agent_id AND v.id = x.memory_id)$q$
                 ELSE '' END,
            CASE WHEN v_k.kind = 's' AND p_at IS NOT NULL THEN 'true'
                 ELSE format($q$EXISTS (SELECT FROM nexus_memory.%1$I AS m
                                         WHERE m.agent_id = %2$L AND m.id = b.id AND m.content_sha256 = b.sha)$q$,
                             v_k.src, v_agent) END,
            v_per);
      END LOOP;
    END LOOP;
    EXECUTE format($q$
        SELECT coalesce(array_agg(c.kind ORDER BY c.dist, c.id), '{}'),
               coalesce(array_agg(c.id ORDER BY c.dist, c.id), '{}'),
               coalesce(array_agg(c.dist ORDER BY c.dist, c.id), '{}')
          FROM (SELECT u.* FROM (%s) AS u
                 -- relaxed_order: HNSW may return neighbours slightly out of order; sort again
                 ORDER BY u.dist, u.id LIMIT $8) AS c$q$,
        array_to_string(v_branches, ' UNION ALL '))
       INTO kinds, ids, dists
      USING p_embedding, memory_system._embedding_model(), p_session, p_since, p_until, p_tags_all,
            p_metadata_contains, p_candidates, p_at;
END
$$;
COMMENT ON FUNCTION nexus._memory_search_vector(public.vector, "char"[], integer, text, timestamptz,
                                                timestamptz, text[], jsonb, timestamptz, text[]) IS
'Internal: the vector branch of nexus.memory_search, arguments checked by it: the p_candidates
memories of the calling agent nearest to p_embedding (cosine; HNSW over the agent''s own partition,
iterative scan, ef_search by the agent''s size; an exact scan for a small agent in a shared
partition), filters applied inside the scan (facts that do not hold at p_at too; p_at NULL: every
fact), vectors of outdated content left out. p_agents: the memories searched (own and spaces), each
in its own partition, merged by distance; with more than one, each gives 2 x p_candidates / their
number, with ef_search to match (at least 40). Returns
parallel arrays (kind e|s|t, id, cosine distance), nearest first.';


CREATE OR REPLACE FUNCTION nexus._session_neighbours(p_id bigint, p_session text, p_n integer, p_agent text)
RETURNS TABLE (id bigint, pos integer)
LANGUAGE sql STABLE
AS $$
    -- index-only scans of (agent_id, session_id, id); no SET clause, so that it is inlined
    SELECT b.id, -(row_number() OVER (ORDER BY b.id DESC))::integer
      FROM (SELECT e.id FROM nexus_memory.zep_episodic_memory AS e
             WHERE e.agent_id = p_agent AND e.session_id = p_session
               AND e.id < p_id
             ORDER BY e.id DESC LIMIT p_n) AS b
    UNION ALL
    SELECT a.id, (row_number() OVER (ORDER BY a.id))::integer
      FROM (SELECT e.id FROM nexus_memory.zep_episodic_memory AS e
             WHERE e.agent_id = p_agent AND e.session_id = p_session
               AND e.id > p_id
             ORDER BY e.id LIMIT p_n) AS a
$$;
COMMENT ON FUNCTION nexus._session_neighbours(bigint, text, integer, text) IS
'Internal: the episodes of p_agent (the caller, or a space it reads) of session p_session recorded just before and after
episode p_id (by id), up to p_n on each side: (id, pos), pos -1 the one just before, 1 just after.';


CREATE OR REPLACE FUNCTION nexus._session_context(p_id bigint, p_session text, p_n integer, p_agent text)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_agg(jsonb_build_object('id', n.id, 'offset', n.pos, 'content', e.content) ORDER BY n.pos)
      FROM nexus._session_neighbours(p_id, p_session, p_n, p_agent) AS n
      JOIN nexus_memory.zep_episodic_memory AS e
        ON e.agent_id = p_agent AND e.id = n.id
$$;
COMMENT ON FUNCTION nexus._session_context(bigint, text, integer, text) IS
'Internal: _session_neighbours with their content, as the JSON array memory_search returns in
neighbours ([{id, offset, content}], in order); NULL if there are none.';


CREATE OR REPLACE FUNCTION nexus._memory_search_check_args(
    p_query              text,
    p_query_embedding    public.vector,
    p_limit_n            integer,
    p_kinds              text[],
    p_session            text,
    p_since              timestamptz,
    p_until              timestamptz,
    p_tags_all           text[],
    p_metadata_contains  jsonb,
    p_text_mode          text,
    p_rrf_k              integer,
    p_text_weight        float8,
    p_vector_weight      float8,
    p_recency_weight     float8,
    p_recency_half_life  interval,
    p_candidates         integer,
    p_neighbour_weight   float8,
    p_context            integer)
RETURNS "char"[]
LANGUAGE plpgsql IMMUTABLE
SECURITY INVOKER
AS $$
DECLARE
    v_kinds  "char"[] := nexus._search_kinds(p_kinds);
BEGIN
    IF nullif(btrim(p_query), '') IS NULL AND p_query_embedding IS NULL THEN
        RAISE EXCEPTION 'memory_search needs a query text, a query embedding or both' USING ERRCODE = 'NX030';
    END IF;
    IF p_limit_n IS NULL OR p_limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', p_limit_n USING ERRCODE = 'NX031';
    END IF;
    IF p_candidates IS NULL OR p_candidates NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'candidates must be between 1 and 1000, got %', p_candidates USING ERRCODE = 'NX031';
    END IF;
    IF p_text_mode IS NULL OR p_text_mode NOT IN ('natural', 'websearch') THEN
        RAISE EXCEPTION 'text_mode must be natural or websearch, got %', p_text_mode USING ERRCODE = 'NX031';
    END IF;
    IF p_rrf_k IS NULL OR p_rrf_k < 1 THEN
        RAISE EXCEPTION 'rrf_k must be at least 1, got %', p_rrf_k USING ERRCODE = 'NX031';
    END IF;
    IF p_text_weight IS NULL OR p_vector_weight IS NULL OR p_recency_weight IS NULL OR p_neighbour_weight IS NULL
       OR p_text_weight < 0 OR p_vector_weight < 0 OR p_recency_weight < 0 OR p_neighbour_weight < 0
       OR 'NaN'::float8 IN (p_text_weight, p_vector_weight, p_recency_weight, p_neighbour_weight) THEN
        RAISE EXCEPTION 'weights must be zero or positive numbers' USING ERRCODE = 'NX031';
    END IF;
    IF p_context IS NULL OR p_context NOT BETWEEN 0 AND 20 THEN
        RAISE EXCEPTION 'context must be between 0 and 20, got %', p_context USING ERRCODE = 'NX031';
    END IF;
    IF p_recency_half_life IS NULL OR p_recency_half_life <= interval '0' THEN
        RAISE EXCEPTION 'recency_half_life must be positive, got %', p_recency_half_life USING ERRCODE = 'NX031';
    END IF;
    IF octet_length(p_query) > 65536 THEN
        RAISE EXCEPTION 'query text over 64 KiB' USING ERRCODE = 'NX011';
    END IF;
    IF p_session IS NOT NULL THEN
        -- semantic memories belong to no session
        v_kinds := array_remove(v_kinds, 's'::"char");
    END IF;
    IF p_session IS NOT NULL OR p_since IS NOT NULL OR p_until IS NOT NULL OR p_tags_all IS NOT NULL
       OR p_metadata_contains IS NOT NULL OR p_text_mode = 'websearch' THEN
        -- store texts have no session, tags or metadata, and no full-text column of their own
        v_kinds := array_remove(v_kinds, 't'::"char");
    END IF;
    RETURN v_kinds;
END
$$;
COMMENT ON FUNCTION nexus._memory_search_check_args(text, public.vector, integer, text[], text, timestamptz,
                                                    timestamptz, text[], jsonb, text, integer, float8, float8,
                                                    float8, interval, integer, float8, integer) IS
'Internal: checks the arguments of nexus.memory_search (its own, in its order, but df_budget, which
text_candidates checks) and returns the kinds to search as postings codes (e episode, s semantic,
t store text): without semantic memories when a session is given, without store texts with any
filter or in websearch mode. Errors: NX030 no query, NX031 bad argument, NX011 query over 64 KiB.';


CREATE OR REPLACE FUNCTION nexus._check_query_embedding(p_embedding public.vector)
RETURNS void
LANGUAGE plpgsql STABLE
SECURITY INVOKER
AS $$
DECLARE
    v_dims  integer;
BEGIN
    IF p_embedding IS NULL THEN
        RETURN;
    END IF;
    SELECT s.value::integer INTO v_dims FROM memory_system.settings AS s WHERE s.name = 'embedding_dimensions';
    IF public.vector_dims(p_embedding) <> v_dims THEN
        RAISE EXCEPTION 'query embedding has % dimensions, the model''s vectors have %',
            public.vector_dims(p_embedding), v_dims USING ERRCODE = 'NX013';
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._check_query_embedding(public.vector) IS
'Internal: refuses a query vector (of nexus.memory_search, nexus.store_search) whose dimension is not
the configured model''s (NX013); a NULL one passes.';


CREATE OR REPLACE FUNCTION nexus._neighbour_credit(
    p_text_kinds        "char"[],
    p_text_ids          bigint[],
    p_vector_kinds      "char"[],
    p_vector_ids        bigint[],
    p_text_weight       float8,
    p_vector_weight     float8,
    p_rrf_k             integer,
    p_neighbour_weight  float8,
    p_agents            text[])
RETURNS TABLE (id bigint, credit float8)
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$
    -- no SET clause, not STRICT, one statement: inlined into the caller's statement
    WITH found AS (
        -- every episode a branch found, with its fused score
        SELECT coalesce(txt.id, vec.id) AS id,
               coalesce(p_text_weight / (p_rrf_k + txt.rnk), 0)
               + coalesce(p_vector_weight / (p_rrf_k + vec.rnk), 0) AS rrf
          FROM (SELECT x.id, x.rnk
                  FROM unnest(p_text_kinds, p_text_ids) WITH ORDINALITY AS x(kind, id, rnk)
                 WHERE x.kind = 'e') AS txt
          FULL JOIN (SELECT x.id, x.rnk
                       FROM unnest(p_vector_kinds, p_vector_ids) WITH ORDINALITY AS x(kind, id, rnk)
                      WHERE x.kind = 'e') AS vec ON vec.id = txt.id
    ), lent AS (
        -- what the best 20 lend their neighbours, and the best score among the lenders
        SELECT n.id, sum(p_neighbour_weight / abs(n.pos) * hit.rrf) AS credit, max(hit.rrf) AS lender
          FROM (SELECT best.id, best.rrf, e.session_id, e.agent_id
                  FROM (SELECT f.id, f.rrf FROM found AS f ORDER BY f.rrf DESC, f.id LIMIT 20) AS best
                  JOIN nexus_memory.zep_episodic_memory AS e
                    ON e.agent_id = ANY (p_agents) AND e.id = best.id
                 WHERE e.session_id IS NOT NULL) AS hit
         CROSS JOIN LATERAL nexus._session_neighbours(hit.id, hit.session_id, 2, hit.agent_id) AS n
         GROUP BY n.id
    )
    -- a neighbour below the best hit that lent to it rises to just below it, never above it:
    -- the reply follows the statement that earned it (0.99 of the lender's score); one that a
    -- branch ranked above every lender already keeps all its credit
    SELECT l.id, CASE WHEN coalesce(f.rrf, 0) >= l.lender THEN l.credit
                      ELSE least(l.credit, greatest(0.99 * l.lender - coalesce(f.rrf, 0), 0)) END
      FROM lent AS l LEFT JOIN found AS f ON f.id = l.id
$$;
COMMENT ON FUNCTION nexus._neighbour_credit("char"[], bigint[], "char"[], bigint[], float8, float8, integer,
                                            float8, text[]) IS
'Internal: the neighbour credit of nexus.memory_search. Its branches'' results (parallel arrays of
kind e|s|t and id, best first) are fused by Reciprocal Rank Fusion; each of the best 20 episodes that
has a session lends p_neighbour_weight times its fused score to the episodes of its memory
(p_agents: the caller''s own and spaces) recorded just before and after it in that session, half of it to those two away. A neighbour''s
credit is capped so that its fused score plus the credit stays below 0.99 times the best score of
those that lent to it: a reply never outranks the statement that lifted it. Returns (id, credit)
per episode credited.';


CREATE OR REPLACE FUNCTION nexus._newer_first(p_ids bigint[], p_scores float8[], p_depth integer,
                                              p_agents text[])
RETURNS TABLE (id bigint, score float8)
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_ids    bigint[];
    v_vecs   public.vector[];
BEGIN
    -- the best p_depth episodes
    SELECT array_agg(x.id ORDER BY x.score DESC, x.id) INTO v_ids
      FROM (SELECT x.* FROM unnest(p_ids, p_scores) AS x(id, score) ORDER BY x.score DESC, x.id LIMIT p_depth) AS x;
    IF coalesce(cardinality(v_ids), 0) < 2 THEN
        RETURN;
    END IF;
    -- their vectors, of their current content: planned for this call with the memories as
    -- constants, as the vector branch is, so that it reads and locks their vector partitions only
    EXECUTE format($q$
        SELECT array_agg(v.embedding ORDER BY x.ord)
          FROM unnest($1) WITH ORDINALITY AS x(id, ord)
          JOIN nexus_memory.zep_episodic_memory AS e ON e.agent_id = ANY (%1$L::text[]) AND e.id = x.id
          LEFT JOIN nexus_memory.episode_embeddings AS v
            ON v.agent_id = ANY (%1$L::text[]) AND v.agent_id = e.agent_id AND v.episode_id = e.id AND v.content_sha256 = e.content_sha256
           AND v.model = $2$q$, p_agents)
       INTO v_vecs USING v_ids, memory_system._embedding_model();
    RETURN QUERY
    WITH h AS MATERIALIZED (
        -- with when what each tells happened
        SELECT x.id, s.score, coalesce(e.valid_at, e.created_at) AS at, x.embedding
          FROM unnest(v_ids, v_vecs) AS x(id, embedding)
          JOIN unnest(p_ids, p_scores) AS s(id, score) ON s.id = x.id
          JOIN nexus_memory.zep_episodic_memory AS e ON e.agent_id = ANY (p_agents) AND e.id = x.id
    ), led AS (
        -- each one's leader: the best of the episodes that score at least as well but at most
        -- 1 / 0.6 times as well (a near tie) and whose vector has a cosine of at least 0.4 with its
        -- own (the same topic); itself if there is none. Both bounds measured on LoCoMo, the 7
        -- conversations and quality.knowledge_update (bench/README.md)
        SELECT DISTINCT ON (a.id) a.id, a.score, a.at, b.id AS leader
          FROM h AS a
          JOIN h AS b
            ON b.id = a.id
            OR (b.score >= a.score AND a.score >= 0.6 * b.score
                AND 1 - (a.embedding OPERATOR(public.<=>) b.embedding) >= 0.4)
         ORDER BY a.id, b.score DESC, b.id
    )
    -- within each leader's group, the places (scores) are handed out newest first; episodes of
    -- the same time (one session's date, one transaction) keep their order: none is newer
    SELECT w.id, p.score
      FROM (SELECT l.id, l.leader, row_number() OVER (PARTITION BY l.leader ORDER BY l.at DESC, l.score DESC, l.id) AS k
              FROM led AS l) AS w
      JOIN (SELECT l.leader, l.score, row_number() OVER (PARTITION BY l.leader ORDER BY l.score DESC, l.id) AS k
              FROM led AS l) AS p ON p.leader = w.leader AND p.k = w.k;
END
$$;
COMMENT ON FUNCTION nexus._newer_first(bigint[], float8[], integer, text[]) IS
'Internal: the last step of nexus.memory_search''s ranking. Of the episodes given (parallel arrays
of id and score), the best p_depth are grouped by topic: each joins the best episode that scores
at least as well, within a factor 0.6 (a near tie), and whose vector has a cosine of at least 0.4
with its own. Within a group the scores are handed out again, newest first (coalesce(valid_at,
created_at); of equal times, the better score first): when episodes say different things about
the same thing, the newer ranks first; an episode without a vector of its current content is a
group of its own. Only a
permutation within each group: the set of scores is unchanged. The vectors are read by a statement
planned for the call with the memories searched (p_agents) as constants (only their vector
partitions are locked).
Returns (id, score) for the episodes considered (none if fewer than two).';


CREATE OR REPLACE FUNCTION nexus._memory_search_fuse(
    p_query              text,
    p_tsq                tsquery,
    p_text_kinds         "char"[],
    p_text_ids           bigint[],
    p_text_scores        float8[],
    p_vector_kinds       "char"[],
    p_vector_ids         bigint[],
    p_vector_dists       float8[],
    p_credit_ids         bigint[],
    p_credits            float8[],
    p_limit_n            integer,
    p_rrf_k              integer,
    p_text_weight        float8,
    p_vector_weight      float8,
    p_recency_weight     float8,
    p_recency_half_life  interval,
    p_context            integer,
    p_agents             text[])
RETURNS TABLE (kind text, id bigint, content text, snippet text,
               text_rank integer, text_score float8, vector_rank integer, vector_score float8,
               fused_score float8, created_at timestamptz, session_id text, tags text[], metadata jsonb,
               valid_at timestamptz, neighbours jsonb, owner_id text, author text)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    RETURN QUERY
    WITH txt AS (
        SELECT x.kind, x.id, x.score, x.rnk::integer AS rnk
          FROM unnest(p_text_kinds, p_text_ids, p_text_scores) WITH ORDINALITY AS x(kind, id, score, rnk)
    ), vec AS (
        SELECT x.kind, x.id, 1 - x.dist AS sim, x.rnk::integer AS rnk
          FROM unnest(p_vector_kinds, p_vector_ids, p_vector_dists) WITH ORDINALITY AS x(kind, id, dist, rnk)
    ), f AS (
        SELECT coalesce(txt.kind, vec.kind) AS kind, coalesce(txt.id, vec.id) AS id,
               txt.rnk AS txt_rnk, txt.score AS txt_score, vec.rnk AS vec_rnk, vec.sim AS vec_sim,
               coalesce(p_text_weight / (p_rrf_k + txt.rnk), 0)
               + coalesce(p_vector_weight / (p_rrf_k + vec.rnk), 0) AS rrf
          FROM txt FULL JOIN vec ON vec.kind = txt.kind AND vec.id = txt.id
    ), g AS (
        SELECT f.kind, f.id, f.txt_rnk, f.txt_score, f.vec_rnk, f.vec_sim, f.rrf + coalesce(c.credit, 0) AS score
          FROM f LEFT JOIN unnest(p_credit_ids, p_credits) AS c(id, credit) ON f.kind = 'e' AND c.id = f.id
    ), best AS MATERIALIZED (
        -- without recency the order is known before the memories are read: read only the best
        -- (twice p_limit_n, in case one was deleted since a branch found it)
        SELECT g.* FROM g
         ORDER BY g.score DESC, g.kind, g.id
         LIMIT CASE WHEN p_recency_weight > 0 THEN NULL ELSE 2 * p_limit_n END
    ), m AS (
        SELECT b.*, 'episode'::text AS kind_name, e.content, e.created_at, e.session_id, e.tags, e.metadata,
               e.valid_at, e.agent_id AS owner_id, coalesce(e.author, e.agent_id) AS author
          FROM best AS b JOIN nexus_memory.zep_episodic_memory AS e ON e.agent_id = ANY (p_agents) AND e.id = b.id
         WHERE b.kind = 'e'
        UNION ALL
        SELECT b.*, 'semantic', s.content, s.created_at, NULL, s.tags, s.metadata, NULL, s.agent_id,
               coalesce(s.author, s.agent_id)
          FROM best AS b JOIN nexus_memory.semantic_memories AS s ON s.agent_id = ANY (p_agents) AND s.id = b.id
         WHERE b.kind = 's'
        UNION ALL
        -- a store item's text (nexus.store_put): its item's namespace, key and the text's path
        SELECT b.*, 'store', x.content, i.created_at, NULL, NULL,
               jsonb_build_object('namespace', i.namespace, 'key', i.key, 'path', x.path), NULL, i.agent_id,
               coalesce(i.author, i.agent_id)
          FROM best AS b JOIN nexus_memory.store_texts AS x ON x.agent_id = ANY (p_agents) AND x.id = b.id
          JOIN nexus_memory.store_items AS i ON i.agent_id = x.agent_id AND i.id = x.item_id
         WHERE b.kind = 't' AND (i.expires_at IS NULL OR i.expires_at > clock_timestamp())
    ), scored AS (
        SELECT m.*,
               -- the age of what a memory tells is that of the time it is about, when given
               m.score + CASE WHEN p_recency_weight > 0
                              THEN p_recency_weight / (p_rrf_k + 1)
                                   * power(0.5, greatest(extract(epoch FROM now() - coalesce(m.valid_at, m.created_at)), 0)
                                                / extract(epoch FROM p_recency_half_life))
                              ELSE 0 END AS fused0
          FROM m
    ), ranked AS (
        -- episodes that tell the same thing: the newest takes the best place among them, among
        -- the best 5 (which rows are in the first 5, 10, ... does not change)
        SELECT s.*, coalesce(o.score, s.fused0) AS fused
          FROM scored AS s
          LEFT JOIN nexus._newer_first((SELECT array_agg(x.id ORDER BY x.id) FROM scored AS x WHERE x.kind = 'e'),
                                       (SELECT array_agg(x.fused0 ORDER BY x.id) FROM scored AS x WHERE x.kind = 'e'),
                                       least(p_limit_n, 5), p_agents) AS o
            ON s.kind = 'e' AND o.id = s.id
         -- equal scores (one branch's first is the other's second): the closer in meaning
         -- first, then the newer
         ORDER BY fused DESC, s.vec_sim DESC NULLS LAST, coalesce(s.valid_at, s.created_at) DESC, s.kind, s.id
         LIMIT p_limit_n
    )
    SELECT r.kind_name, r.id, r.content,
           coalesce(ts_headline('english'::regconfig, left(r.content, 20000),
                                coalesce(p_tsq, nexus._or_tsquery(nullif(btrim(p_query), ''))),
                                'MaxWords=30, MinWords=12, MaxFragments=2, StartSel=**, StopSel=**'),
                    left(r.content, 200)),
           r.txt_rnk, r.txt_score, r.vec_rnk, r.vec_sim, r.fused, r.created_at, r.session_id, r.tags, r.metadata,
           r.valid_at,
           CASE WHEN p_context > 0 AND r.session_id IS NOT NULL
                THEN nexus._session_context(r.id, r.session_id, p_context, r.owner_id) END,
           r.owner_id, r.author
      FROM ranked AS r
     ORDER BY r.fused DESC, r.vec_sim DESC NULLS LAST, coalesce(r.valid_at, r.created_at) DESC, r.kind, r.id;
END
$$;
COMMENT ON FUNCTION nexus._memory_search_fuse(text, tsquery, "char"[], bigint[], float8[], "char"[], bigint[],
                                              float8[], bigint[], float8[], integer, integer, float8, float8,
                                              float8, interval, integer, text[]) IS
'Internal: the fusion of nexus.memory_search, arguments checked by it. Each branch''s results
(parallel arrays, best first: kind e|s|t, id, and text score or cosine distance) scored by
Reciprocal Rank Fusion, plus each episode''s neighbour credit (nexus._neighbour_credit) and the
recency term, then episodes on the same topic reordered newest first (nexus._newer_first, among
the best 5: which rows are in the first 5 stays the same, only their order changes); the best p_limit_n
that still exist, as memory_search returns them: snippets from
p_tsq (else the OR of p_query''s terms), neighbours for p_context > 0.; each with the agent_id it belongs
to (owner_id: the caller, or a space of p_agents) and its author.';


CREATE OR REPLACE FUNCTION nexus.memory_search(
    query               text DEFAULT NULL,
    query_embedding     public.vector DEFAULT NULL,
    limit_n             integer DEFAULT 10,
    kinds               text[] DEFAULT '{episode,semantic}',
    session             text DEFAULT NULL,
    since               timestamptz DEFAULT NULL,
    until               timestamptz DEFAULT NULL,
    tags_all            text[] DEFAULT NULL,
    metadata_contains   jsonb DEFAULT NULL,
    text_mode           text DEFAULT 'natural',
    rrf_k               integer DEFAULT 5,
    text_weight         float8 DEFAULT 1,
    vector_weight       float8 DEFAULT 1,
    recency_weight      float8 DEFAULT 0,
    recency_half_life   interval DEFAULT '7 days',
    candidates          integer DEFAULT 100,
    df_budget           integer DEFAULT 10000,
    neighbour_weight    float8 DEFAULT 0.4,
    context             integer DEFAULT 0,
    as_of               timestamptz DEFAULT NULL,
    include_history     boolean DEFAULT false,
    spaces              text[] DEFAULT NULL,
    scope               text DEFAULT 'own')
RETURNS TABLE (kind text, id bigint, content text, snippet text,
               text_rank integer, text_score float8, vector_rank integer, vector_score float8,
               fused_score float8, created_at timestamptz, session_id text, tags text[], metadata jsonb,
               valid_at timestamptz, neighbours jsonb, fact_key text, valid_from timestamptz,
               valid_to timestamptz, ended_by text, superseded_by bigint, space text, author text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    -- the memories searched: the caller's own and the spaces asked for (docs/spaces.md)
    v_agents          text[] := nexus._search_scope(spaces, scope);
    -- the kinds as postings codes: e episode, s semantic, t store text
    v_kinds           "char"[] := nexus._memory_search_check_args(
                          query, query_embedding, limit_n, kinds, session, since, until, tags_all,
                          metadata_contains, text_mode, rrf_k, text_weight, vector_weight, recency_weight,
                          recency_half_life, candidates, neighbour_weight, context);
    -- facts are found if they hold at v_at; NULL: every fact, ended ones too
    v_at              timestamptz := nexus._search_valid_time(as_of, include_history);
    v_tsq             tsquery;
    -- each branch's results, best first
    v_text_kinds      "char"[] := '{}';
    v_text_ids        bigint[] := '{}';
    v_text_scores     float8[] := '{}';
    v_vector_kinds    "char"[] := '{}';
    v_vector_ids      bigint[] := '{}';
    v_vector_dists    float8[] := '{}';
    -- the episodes lifted by the hits next to them in their session
    v_credit_ids      bigint[] := '{}';
    v_credits         float8[] := '{}';
BEGIN
    candidates := greatest(candidates, limit_n);

    -- text branch -------------------------------------------------------------------------------
    IF nullif(btrim(query), '') IS NOT NULL AND text_weight > 0 AND cardinality(v_kinds) > 0 THEN
        SELECT b.kinds, b.ids, b.scores INTO v_text_kinds, v_text_ids, v_text_scores
          FROM nexus._memory_search_text(query, v_kinds, text_mode, candidates, df_budget, session, since,
                                         until, tags_all, metadata_contains, v_at, v_agents) AS b;
        IF text_mode = 'websearch' THEN
            -- for the snippets
            v_tsq := websearch_to_tsquery('english'::regconfig, query);
        END IF;
    END IF;

    -- vector branch -----------------------------------------------------------------------------
    PERFORM nexus._check_query_embedding(query_embedding);
    IF query_embedding IS NOT NULL AND vector_weight > 0 AND cardinality(v_kinds) > 0 THEN
        SELECT b.kinds, b.ids, b.dists INTO v_vector_kinds, v_vector_ids, v_vector_dists
          FROM nexus._memory_search_vector(query_embedding, v_kinds, candidates, session, since, until,
                                           tags_all, metadata_contains, v_at, v_agents) AS b;
    END IF;

    -- neighbours: the best 20 episodes found lend a share of their score to the episodes recorded
    -- just before and after them in their session (an answer often sits in the reply to a hit):
    -- neighbour_weight at distance 1, half of it at distance 2. Only rows a branch found gain
    -- (below): spreading reorders what the query matched, it adds nothing it did not. Its own
    -- statement, planned only when it runs: an agent without sessions skips it (one probe of
    -- the session index), and the fusion statement stays cheap to plan (it is planned again
    -- whenever the role changes)
    IF neighbour_weight > 0 AND 'e' = ANY (v_kinds)
       AND EXISTS (SELECT FROM nexus_memory.zep_episodic_memory AS e
                    WHERE e.agent_id = ANY (v_agents) AND e.session_id IS NOT NULL) THEN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.credit), '{}') INTO v_credit_ids, v_credits
          FROM nexus._neighbour_credit(v_text_kinds, v_text_ids, v_vector_kinds, v_vector_ids, text_weight,
                                       vector_weight, rrf_k, neighbour_weight, v_agents) AS c;
    END IF;

    -- fusion: of the branches' candidates only (a fact that does not hold at v_at is none of
    -- them); each fact with its validity --------------------------------------------------------
    RETURN QUERY
    WITH hits AS MATERIALIZED (
    SELECT r.kind, r.id, r.content, r.snippet, r.text_rank, r.text_score, r.vector_rank, r.vector_score,
           r.fused_score, r.created_at, r.session_id, r.tags, r.metadata, r.valid_at, r.neighbours,
           s.fact_key, s.valid_from, s.valid_to, s.ended_by, s.superseded_by, sp.name, r.author
      FROM nexus._memory_search_fuse(query, v_tsq, v_text_kinds, v_text_ids, v_text_scores, v_vector_kinds,
                                     v_vector_ids, v_vector_dists, v_credit_ids, v_credits, limit_n, rrf_k,
                                     text_weight, vector_weight, recency_weight, recency_half_life, context,
                                     v_agents) AS r
      LEFT JOIN nexus_memory.semantic_memories AS s
             ON r.kind = 'semantic' AND s.agent_id = r.owner_id AND s.id = r.id
      -- the space a hit is in (NULL: the caller's own memory)
      LEFT JOIN memory_system.spaces AS sp ON sp.space_id = r.owner_id
     -- equal scores: the closer in meaning first, then the newer
     ORDER BY r.fused_score DESC, r.vector_score DESC NULLS LAST,
              coalesce(r.valid_at, s.valid_from, r.created_at) DESC, r.kind, r.id)
    -- the read record (docs/privacy.md): one call with the hits in the order returned, made
    -- before any row is (an uncorrelated condition: a one-time filter), even when there is none
    SELECT h.* FROM hits AS h
     WHERE (SELECT memory_system._record_read('memory_search', query, array_agg(x.kind), array_agg(x.id))
              FROM hits AS x) IS NOT NULL;
END
$$;
COMMENT ON FUNCTION nexus.memory_search(text, public.vector, integer, text[], text, timestamptz, timestamptz,
                                        text[], jsonb, text, integer, float8, float8, float8, interval,
                                        integer, integer, float8, integer, timestamptz, boolean, text[], text) IS
'Hybrid search over the calling agent''s memories. query: natural-language text (BM25, OR of terms;
text_mode => ''websearch'' for "quoted phrases", OR and -excluded terms); query_embedding: a vector of
the configured model (HNSW, iterative scan). Either or both; fused by Reciprocal Rank Fusion
(sum of weight / (rrf_k + rank) per branch, rrf_k 5 by default). Each of the best 20 episodes that
has a session lends neighbour_weight (default 0.4) times its score to the episodes recorded just
before and after it in that session, half of it to those two away, if a branch found them too: the
reply to a hit rises, to just below the hit (a neighbour never outranks its best lender). Plus
recency_weight * 0.5^(age / recency_half_life) / (rrf_k + 1), the age of coalesce(valid_at,
created_at). Then among the first 5 rows, episodes on one topic (near tie, cosine >= 0.4) are
reordered newest first (nexus._newer_first); equal scores: the higher cosine, then the newer first.
A fact''s key is searched with its content (docs/facts.md).
Filters: kinds (episode, semantic, store: the texts of nexus.store_put items, metadata naming
the item''s namespace, key and path; without filters and in natural text mode only), session
(episodes only), since/until (created_at), tags_all
(carries all of them), metadata_contains (jsonb containment); with filters, the text branch keeps the matches among the best
1,000 BM25 hits. candidates: rows per branch (default 100); df_budget (default 10,000; NULL: exact
BM25): see text_candidates. An agent of at most 20,000 memories under a tenth of its vector partition
is searched exactly instead of by HNSW. context => N (0-20): neighbours holds, for each episode
returned, up to N episodes before and after it in its session, in the order recorded, as a JSON
array of {id, offset, content} (offset -1 is the one just before); filters do not apply to them.
Facts (docs/facts.md) are found only if they hold now, or at as_of; include_history => true finds
every fact, ended ones too. Left out in each branch, before its candidates are counted. Each fact
hit has its key and validity (fact_key, valid_from, valid_to, ended_by, superseded_by; NULL for
episodes and store texts).
Spaces (docs/spaces.md): spaces => ''{billing-team}'' searches those spaces with the caller''s own
memory, scope => ''all'' every space it may read too, scope => ''spaces'' the named spaces alone; one
BM25 corpus, a vector branch per memory (each its own HNSW graph), fused as one. Each hit has its
space (NULL: the caller''s own) and author (the agent that wrote it).
Errors: NX030 no query, NX031 bad argument (as_of with include_history too), NX011 query over 64
KiB, NX013 wrong vector dimension, NX080 a space you may not read, NX085 bad scope.

MCP: Search your memories (episodes and facts) by meaning and by words at once; the server embeds your
query. Returns {"mode", "hits"}, best hit first: each hit has its kind, id, content, a snippet with the
matching words in **bold**, and its ranks. mode is "text" (words only, "note" says why) when search by
meaning is unavailable. Facts that no longer hold are left out (ask with as_of or include_history);
a fact hit has its key and when it held (valid_from, valid_to; valid_to null: it still holds).
- query: What to look for, in plain words or as a question: not empty, up to 8,192 characters.
  Example: "which invoices are overdue?".
- limit_n: How many hits to return, 1 to 1000 (default 10). Example: 5.
- kinds: Which memories to search: episode, semantic (facts), store (default: episode and semantic).
  Example: ["semantic"].
- session: Only episodes of this conversation or task; facts belong to none (default: all). Example: "onboarding".
- since: Only memories recorded at or after this time, ISO 8601 (default: no limit). Example: "2025-06-01T00:00:00Z".
- until: Only memories recorded before this time, ISO 8601 (default: no limit). Example: "2025-07-01T00:00:00Z".
- tags_all: Only memories carrying every one of these tags (default: any). Example: ["billing"].
- metadata_contains: Only memories whose metadata contains this JSON object (default: any).
  Example: {"customer": "ACME"}.
- text_mode: How words match: "natural" (any of the words, rarer ones count more; the default) or
  "websearch" ("an exact phrase", or, -excluded words). Example: "websearch".
- rrf_k: Tuning, rarely needed: 1 or more (default 5); higher lets the top hits of the word and the
  meaning search dominate less. Example: 60.
- text_weight: How much matching words count, 0 or more (default 1; 0 searches by meaning only). Example: 0.5.
- vector_weight: How much similar meaning counts, 0 or more (default 1; 0 searches by words only). Example: 2.
- recency_weight: How much to favour recent memories, 0 or more (default 0: not at all; 1: a brand-new
  memory gains as much as a top hit). Example: 1.
- recency_half_life: With recency_weight: the age at which that favour halves, a positive duration
  (default "7 days"). Example: "2 days".
- candidates: Tuning, rarely needed: how many hits each way of searching considers, 1 to 1000
  (default 100). Example: 200.
- df_budget: Tuning, rarely needed: caps the work spent on very common words, 1 or more (default
  10000; null: no cap). Example: 50000.
- neighbour_weight: How much a hit lifts the episodes recorded just before and after it in its
  session, 0 or more (default 0.4; 0: not at all). Example: 0.
- context: Also return, with each episode hit, up to this many episodes before and after it in its
  session (in "neighbours"), 0 to 20 (default 0). Example: 2.
- as_of: Find the facts that held at this past time instead of now, ISO 8601 (default now); episodes
  are found whatever their time. Example: "2024-06-01T00:00:00Z".
- include_history: true to find facts that no longer hold too, each with when it held (default
  false; not with as_of). Example: true.
- spaces: Shared spaces to search as well as your own memory, ones you may read (see the spaces tool;
  default none). Each hit says its space and author. Example: ["billing-team"].
- scope: "own" (your memory and the spaces named; the default), "all" (your memory and every space
  you may read) or "spaces" (only the spaces named). Example: "all".';


CREATE OR REPLACE FUNCTION nexus._or_tsquery(p_query text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE
AS $$
    SELECT string_agg(quote_literal(l.lexeme), ' | ')::tsquery
      FROM unnest(to_tsvector('english'::regconfig, p_query)) AS l
$$;
COMMENT ON FUNCTION nexus._or_tsquery(text) IS
'Internal: the OR of a text''s stemmed lexemes as a tsquery, NULL if it has none (for snippets).';


CREATE OR REPLACE FUNCTION nexus.memory_similar(
    memory_kind text,
    memory_id   bigint,
    limit_n     integer DEFAULT 10,
    kinds       text[] DEFAULT '{episode,semantic}',
    candidates  integer DEFAULT 100,
    as_of            timestamptz DEFAULT NULL,
    include_history  boolean DEFAULT false)
RETURNS TABLE (kind text, id bigint, content text, snippet text, vector_rank integer,
               vector_score float8, created_at timestamptz, session_id text, tags text[], metadata jsonb,
               fact_key text, valid_from timestamptz, valid_to timestamptz, ended_by text,
               superseded_by bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_vec public.vector;
    v_exists boolean;
BEGIN
    IF memory_kind IS NULL OR memory_kind NOT IN ('episode', 'semantic') THEN
        RAISE EXCEPTION 'memory_kind must be episode or semantic, got %', memory_kind USING ERRCODE = 'NX031';
    END IF;
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 999 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 999, got %', limit_n USING ERRCODE = 'NX031';
    END IF;
    IF memory_kind = 'episode' THEN
        SELECT true, x.embedding INTO v_exists, v_vec
          FROM nexus_memory.zep_episodic_memory AS e
          LEFT JOIN nexus_memory.episode_embeddings AS x
                 ON x.agent_id = e.agent_id AND x.episode_id = e.id AND x.content_sha256 = e.content_sha256
                AND x.model = memory_system._embedding_model()
         WHERE e.agent_id = (current_user::text COLLATE "default") AND e.id = memory_similar.memory_id;
    ELSE
        SELECT true, x.embedding INTO v_exists, v_vec
          FROM nexus_memory.semantic_memories AS s
          LEFT JOIN nexus_memory.semantic_memory_embeddings AS x
                 ON x.agent_id = s.agent_id AND x.memory_id = s.id AND x.content_sha256 = s.content_sha256
                AND x.model = memory_system._embedding_model()
         WHERE s.agent_id = (current_user::text COLLATE "default") AND s.id = memory_similar.memory_id;
    END IF;
    IF v_exists IS NULL THEN
        RAISE EXCEPTION '% % not found', memory_kind, memory_id USING ERRCODE = 'NX033';
    END IF;
    IF v_vec IS NULL THEN
        RAISE EXCEPTION '% % has no vector yet (its embedding is queued)', memory_kind, memory_id USING ERRCODE = 'NX034';
    END IF;
    RETURN QUERY
    SELECT r.kind, r.id, r.content, r.snippet, r.vector_rank, r.vector_score, r.created_at,
           r.session_id, r.tags, r.metadata, r.fact_key, r.valid_from, r.valid_to, r.ended_by, r.superseded_by
      FROM nexus.memory_search(query_embedding => v_vec, limit_n => limit_n + 1, kinds => kinds,
                               candidates => greatest(candidates, limit_n + 1), neighbour_weight => 0,
                               as_of => as_of, include_history => include_history) AS r
     WHERE NOT (r.kind = memory_similar.memory_kind AND r.id = memory_similar.memory_id)
     ORDER BY r.vector_rank
     LIMIT limit_n;
END
$$;
COMMENT ON FUNCTION nexus.memory_similar(text, bigint, integer, text[], integer, timestamptz, boolean) IS
'Memories like a given one (memory_kind episode|semantic, memory_id), by the stored vector of that memory: no model
needed. Facts are found as memory_search finds them: if they hold now (or at as_of; include_history:
all), each with its key and validity. Errors: NX031 bad argument (as_of with include_history too),
NX033 not found (or another agent''s), NX034 not embedded yet.

MCP: Find memories close in meaning to one of your own, given by its kind and id (it must be embedded
already: see memory_stats). To search by a text, use recall.
- memory_kind: The kind of the given memory: "episode" or "semantic" (a fact). Example: "episode".
- memory_id: The id of the given episode or fact. Example: 42.
- limit_n: How many similar memories to return, 1 to 999 (default 10). Example: 5.
- kinds: Which memories to look among: episode, semantic (facts), store (default: episode and
  semantic). Example: ["semantic"].
- candidates: Tuning, rarely needed: how many nearest memories to consider, 1 to 1000 (default 100).
  Example: 200.
- as_of: Find the facts that held at this past time instead of now, ISO 8601 (default now).
  Example: "2024-06-01T00:00:00Z".
- include_history: true to find facts that no longer hold too (default false; not with as_of).
  Example: true.';
