-- Store search (LangGraph BaseStore search) and namespace listing. SECURITY INVOKER: row-level
-- security scopes every read to the caller.

CREATE OR REPLACE FUNCTION nexus._store_prefix_bound(p_prefix text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
    -- the least namespace after every namespace that starts with p_prefix (collation "C"): the
    -- last label followed by chr(1), the smallest character there is (text holds no NUL)
    SELECT (p_prefix[1:cardinality(p_prefix) - 1]
            || (p_prefix[cardinality(p_prefix)] || chr(1))::text) COLLATE "C"
$$;
COMMENT ON FUNCTION nexus._store_prefix_bound(text[]) IS
'Internal: the namespaces under a prefix P are exactly those in [P, _store_prefix_bound(P)) in
collation "C" (an index range on store_items).';


CREATE OR REPLACE FUNCTION nexus._store_search_text(
    p_query       text,
    p_all         boolean,
    p_lo          text[],
    p_hi          text[],
    p_now         timestamptz,
    p_keys        text[],
    p_ops         text[],
    p_operands    jsonb[],
    p_candidates  integer,
    p_needed      integer,
    p_df_budget   integer,
    OUT ids       bigint[],
    OUT scores    float8[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- planned once per session, for any query (here and in nexus.text_candidates): planning these
-- statements again at each call (custom plans) cost about 0.4 ms of a 4 ms hybrid search on
-- SciFact, for the same plans
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_agent  text := current_user;
    -- the namespace column's collation (comparing with the default one is an error)
    v_lo     text[] COLLATE "C" := p_lo;
    v_hi     text[] COLLATE "C" := p_hi;
    v_pool   integer := least(2 * p_candidates, 1000);
    v_read   bigint;
    v_docs   float8;
    v_avgdl  float8;
    v_c1     float8;
    v_c2     float8;
BEGIN
    -- BM25 over the agent's store texts, an item scoring as its best text (as in the vector
    -- branch). First nexus.text_candidates (kind store: the rarest terms whose postings fit
    -- df_budget find the texts, the common ones only rescore them), the scope (prefix, expiry,
    -- filter) checked on the best 2 x candidates texts it returns
    WITH c AS MATERIALIZED (
        SELECT c.id, c.score FROM nexus.text_candidates(p_query, '{store}', v_pool, p_df_budget) AS c
    )
    SELECT (SELECT count(*) FROM c),
           coalesce(array_agg(b.item_id ORDER BY b.score DESC, b.item_id), '{}'),
           coalesce(array_agg(b.score ORDER BY b.score DESC, b.item_id), '{}')
      INTO v_read, ids, scores
      FROM (SELECT x.item_id, max(c.score) AS score
              FROM c
              -- per text found, by key (OFFSET 0 keeps it so: planned as a join, it reads
              -- every item of the agent, whose prefix range it cannot estimate)
              CROSS JOIN LATERAL (
                    SELECT x.item_id
                      FROM nexus_memory.store_texts AS x
                      JOIN nexus_memory.store_items AS i ON i.agent_id = x.agent_id AND i.id = x.item_id
                     WHERE x.agent_id = v_agent AND x.id = c.id
                       AND (p_all OR (i.namespace >= v_lo AND i.namespace < v_hi))
                       AND (i.expires_at IS NULL OR i.expires_at > p_now)
                       AND (cardinality(p_keys) = 0
                            OR nexus._store_match(i.value, p_keys, p_ops, p_operands))
                    OFFSET 0) AS x
             GROUP BY x.item_id
             ORDER BY score DESC, x.item_id
             LIMIT p_candidates) AS b;
    -- Only if that leaves fewer items than the page needs while more texts matched: every
    -- posting of the query's terms scored, the scope checked on the items they belong to (exact
    -- BM25; a narrow prefix or filter in a large store)
    IF cardinality(ids) < p_needed AND v_read = v_pool THEN
        SELECT sum(s.docs), sum(s.tokens)::float8 / nullif(sum(s.docs), 0)
          INTO v_docs, v_avgdl
          FROM nexus_memory.text_stats AS s WHERE s.agent_id = v_agent;
        v_c1 := 1.2 * (1 - 0.75);
        v_c2 := 1.2 * 0.75 / v_avgdl;
        WITH terms AS (
            SELECT DISTINCT l.lexeme FROM unnest(to_tsvector('english'::regconfig, p_query)) AS l
        ), weights AS MATERIALIZED (
            SELECT t.lexeme, ln(1 + (v_docs - d.df + 0.5) / (d.df + 0.5)) * (1.2 + 1) AS wt
              FROM terms AS t
             CROSS JOIN LATERAL (SELECT count(*) AS df FROM nexus_memory.text_postings AS p
                                  WHERE p.agent_id = v_agent AND p.lexeme = t.lexeme AND p.kind = 't') AS d
             WHERE d.df > 0
        ), docs AS (
            SELECT p.doc_id, sum(w.wt * p.tf / (p.tf + v_c1 + v_c2 * p.dl)) AS score
              FROM weights AS w
              JOIN nexus_memory.text_postings AS p
                ON p.agent_id = v_agent AND p.lexeme = w.lexeme AND p.kind = 't'
             GROUP BY p.doc_id
        ), items AS (
            SELECT x.item_id, max(d.score) AS score
              FROM docs AS d
              JOIN nexus_memory.store_texts AS x ON x.agent_id = v_agent AND x.id = d.doc_id
             GROUP BY x.item_id
        ), best AS (
            SELECT s.item_id, s.score
              FROM items AS s
             WHERE EXISTS (
                   SELECT FROM nexus_memory.store_items AS i
                    WHERE i.agent_id = v_agent AND i.id = s.item_id
                      AND (p_all OR (i.namespace >= v_lo AND i.namespace < v_hi))
                      AND (i.expires_at IS NULL OR i.expires_at > p_now)
                      AND (cardinality(p_keys) = 0
                           OR nexus._store_match(i.value, p_keys, p_ops, p_operands)))
             ORDER BY s.score DESC, s.item_id
             LIMIT p_candidates
        )
        SELECT coalesce(array_agg(b.item_id ORDER BY b.score DESC, b.item_id), '{}'),
               coalesce(array_agg(b.score ORDER BY b.score DESC, b.item_id), '{}')
          INTO ids, scores
          FROM best AS b;
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._store_search_text(text, boolean, text[], text[], timestamptz, text[], text[], jsonb[],
                                             integer, integer, integer) IS
'Internal: the text branch of nexus.store_search, arguments checked by it: the best p_candidates
items of the calling agent''s store by BM25 (an item as its best text) among those under the
namespace range [p_lo, p_hi) (all with p_all), live at p_now and passing the filter triples.
nexus.text_candidates finds the best texts (df_budget pruning); an exact scan of every posting
of the query''s terms runs only when they leave fewer than p_needed items in scope. Returns
parallel arrays (item id, score), best first.';


CREATE OR REPLACE FUNCTION nexus._store_search_vector(
    p_query_embedding  public.vector,
    p_all              boolean,
    p_lo               text[],
    p_hi               text[],
    p_now              timestamptz,
    p_keys             text[],
    p_ops              text[],
    p_operands         jsonb[],
    p_candidates       integer,
    OUT ids            bigint[],
    OUT dists          float8[])
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = '100'
AS $$
DECLARE
    v_agent  text := current_user;
    v_scope  text;
    v_read   bigint;
    v_rows   float8;
BEGIN
    -- HNSW returns at most ef_search rows: at least the 2 x candidates texts read, growing with
    -- the log of the agent's size as in nexus.memory_search (at most 1,000)
    SELECT sum(s.docs) INTO v_rows FROM nexus_memory.text_stats AS s WHERE s.agent_id = v_agent;
    PERFORM set_config('hnsw.ef_search', least(round(greatest(2 * p_candidates, 40)
                           * (1 + log(greatest(coalesce(v_rows, 0), 10000) / 10000.0))), 1000)::text, true);
    -- Built per call with the agent as a constant: the planner keeps the agent's partition
    -- alone (see nexus.memory_search). First the nearest 2 x candidates texts by HNSW, the
    -- scope (prefix, expiry, filter) and the checksum checked around the scan so that it stays
    -- an index scan; a vector of content since changed is not used (its re-embedding is
    -- queued). Only if that leaves too few items while the graph has more does a second
    -- statement check the scope during the scan.
    -- $1 query vector, $2 model, $3 texts to read, $4 items, $5 all namespaces, $6/$7 prefix
    -- range, $8 now, $9-$11 filter.
    v_scope := format($q$
        t.agent_id = %1$L AND t.content_sha256 = b.sha
        AND ($5 OR (i.namespace >= $6 AND i.namespace < $7))
        AND (i.expires_at IS NULL OR i.expires_at > $8)
        AND (cardinality($9::text[]) = 0 OR nexus._store_match(i.value, $9, $10, $11))$q$, v_agent);
    EXECUTE format($q$
        WITH b AS MATERIALIZED (
            SELECT x.text_id, x.content_sha256 AS sha, x.embedding OPERATOR(public.<=>) $1 AS dist
              FROM nexus_memory.store_text_embeddings AS x
             WHERE x.agent_id = %1$L AND x.model = $2
             ORDER BY x.embedding OPERATOR(public.<=>) $1
             LIMIT $3)
        SELECT (SELECT count(*) FROM b),
               coalesce(array_agg(n.item_id ORDER BY n.dist, n.item_id), '{}'),
               coalesce(array_agg(n.dist ORDER BY n.dist, n.item_id), '{}')
          FROM (SELECT t.item_id, min(b.dist) AS dist
                  FROM b
                  -- per text found, by key (a join could read every item of the agent)
                  CROSS JOIN LATERAL (
                        SELECT t.item_id
                          FROM nexus_memory.store_texts AS t
                          JOIN nexus_memory.store_items AS i ON i.agent_id = t.agent_id AND i.id = t.item_id
                         WHERE t.id = b.text_id AND %2$s) AS t
                 GROUP BY t.item_id
                 ORDER BY dist, t.item_id
                 LIMIT $4) AS n$q$, v_agent, v_scope)
       INTO v_read, ids, dists
      USING p_query_embedding, memory_system._embedding_model(), 2 * p_candidates, p_candidates,
            p_all, p_lo, p_hi, p_now, p_keys, p_ops, p_operands;
    IF cardinality(ids) < p_candidates AND v_read = 2 * p_candidates THEN
        EXECUTE format($q$
            SELECT coalesce(array_agg(n.item_id ORDER BY n.dist, n.item_id), '{}'),
                   coalesce(array_agg(n.dist ORDER BY n.dist, n.item_id), '{}')
              FROM (SELECT t.item_id, min(b.dist) AS dist
                      FROM (SELECT x.text_id, x.content_sha256 AS sha,
                                   x.embedding OPERATOR(public.<=>) $1 AS dist
                              FROM nexus_memory.store_text_embeddings AS x
                             WHERE x.agent_id = %1$L AND x.model = $2
                               AND EXISTS (
                                   SELECT FROM nexus_memory.store_texts AS t
                                     JOIN nexus_memory.store_items AS i
                                       ON i.agent_id = t.agent_id AND i.id = t.item_id
                                    WHERE t.id = x.text_id
                                      AND %2$s)
                             ORDER BY x.embedding OPERATOR(public.<=>) $1
                             LIMIT $3) AS b
                      JOIN nexus_memory.store_texts AS t ON t.agent_id = %1$L AND t.id = b.text_id
                     GROUP BY t.item_id
                     ORDER BY dist, t.item_id
                     LIMIT $4) AS n$q$, v_agent, replace(v_scope, 'b.sha', 'x.content_sha256'))
           INTO ids, dists
          USING p_query_embedding, memory_system._embedding_model(), 2 * p_candidates, p_candidates,
                p_all, p_lo, p_hi, p_now, p_keys, p_ops, p_operands;
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._store_search_vector(public.vector, boolean, text[], text[], timestamptz, text[], text[],
                                               jsonb[], integer) IS
'Internal: the vector branch of nexus.store_search, arguments checked by it: the p_candidates items
of the calling agent''s store in scope (namespace range [p_lo, p_hi) or all with p_all, live at
p_now, passing the filter triples) nearest to p_query_embedding, an item as near as its nearest
text (HNSW over the agent''s own partition, iterative scan; vectors of outdated content left out).
Returns parallel arrays (item id, cosine distance), nearest first.';


CREATE OR REPLACE FUNCTION nexus._store_search_check_args(
    p_namespace_prefix  text[],
    p_query             text,
    p_limit_n           integer,
    p_offset_n          integer,
    p_rrf_k             integer,
    p_candidates        integer,
    p_df_budget         integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SECURITY INVOKER
AS $$
BEGIN
    PERFORM memory_system._store_check_namespace(p_namespace_prefix, 'namespace_prefix', true);
    IF p_limit_n IS NULL OR p_limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', p_limit_n USING ERRCODE = 'NX060';
    END IF;
    IF p_offset_n IS NULL OR p_offset_n NOT BETWEEN 0 AND 10000 THEN
        RAISE EXCEPTION 'offset_n must be between 0 and 10,000, got %', p_offset_n USING ERRCODE = 'NX060';
    END IF;
    IF p_rrf_k IS NULL OR p_rrf_k < 1 THEN
        RAISE EXCEPTION 'rrf_k must be at least 1, got %', p_rrf_k USING ERRCODE = 'NX060';
    END IF;
    IF p_candidates IS NULL OR p_candidates NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'candidates must be between 1 and 1000, got %', p_candidates USING ERRCODE = 'NX060';
    END IF;
    IF p_df_budget IS NOT NULL AND p_df_budget < 1 THEN
        RAISE EXCEPTION 'df_budget must be positive, got %', p_df_budget USING ERRCODE = 'NX060';
    END IF;
    IF octet_length(p_query) > 65536 THEN
        RAISE EXCEPTION 'query text over 64 KiB' USING ERRCODE = 'NX011';
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._store_search_check_args(text[], text, integer, integer, integer, integer, integer) IS
'Internal: checks the arguments of nexus.store_search (its filter aside, which _store_filter checks).
Errors: NX060 bad namespace prefix, limit, offset, rrf_k, candidates or df_budget; NX011 query over
64 KiB.';


CREATE OR REPLACE FUNCTION nexus.store_search(
    namespace_prefix  text[] DEFAULT '{}',
    query             text DEFAULT NULL,
    query_embedding   public.vector DEFAULT NULL,
    filter            jsonb DEFAULT NULL,
    limit_n           integer DEFAULT 10,
    offset_n          integer DEFAULT 0,
    refresh_ttl       boolean DEFAULT true,
    rrf_k             integer DEFAULT 5,
    candidates        integer DEFAULT 15,
    df_budget         integer DEFAULT 2000)
RETURNS TABLE (namespace text[], key text, value jsonb, created_at timestamptz, updated_at timestamptz,
               score float8, text_rank integer, text_score float8, vector_rank integer, vector_score float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_agent           text := current_user;
    v_now             timestamptz := clock_timestamp();
    v_all             boolean := cardinality(namespace_prefix) = 0;
    v_lo              text[] COLLATE "C";
    v_hi              text[] COLLATE "C";
    v_f               record;
    v_text            boolean := nullif(btrim(query), '') IS NOT NULL;
    -- each branch's items, best first
    v_text_ids        bigint[] := '{}';
    v_text_scores     float8[] := '{}';
    v_vector_ids      bigint[] := '{}';
    v_vector_dists    float8[] := '{}';
    v_ids             bigint[];
    v_request         text := json_strip_nulls(json_build_object('namespace_prefix', namespace_prefix, 'query', query,
                                  'filter', filter, 'limit_n', limit_n, 'offset_n', offset_n))::text;
BEGIN
    PERFORM nexus._store_search_check_args(namespace_prefix, query, limit_n, offset_n, rrf_k, candidates, df_budget);
    SELECT * INTO v_f FROM nexus._store_filter(filter);
    IF NOT v_all THEN
        v_lo := namespace_prefix;
        v_hi := nexus._store_prefix_bound(namespace_prefix);
    END IF;

    -- no query: the newest first --------------------------------------------------------------
    IF NOT v_text AND query_embedding IS NULL THEN
        RETURN QUERY
        WITH hits AS (
            SELECT i.id, i.namespace, i.key, i.value, i.created_at, i.updated_at
              FROM nexus_memory.store_items AS i
             WHERE i.agent_id = v_agent
               AND (v_all OR (i.namespace >= v_lo AND i.namespace < v_hi))
               AND (i.expires_at IS NULL OR i.expires_at > v_now)
               AND (cardinality(v_f.keys) = 0 OR nexus._store_match(i.value, v_f.keys, v_f.ops, v_f.operands))
             ORDER BY i.updated_at DESC, i.id DESC
             LIMIT limit_n OFFSET offset_n
        ), refreshed AS (
            UPDATE nexus_memory.store_items AS i SET expires_at = v_now + i.ttl
              FROM hits AS h
             WHERE refresh_ttl AND i.agent_id = v_agent AND i.id = h.id AND i.ttl IS NOT NULL
        )
        SELECT h.namespace::text[], h.key::text, h.value, h.created_at, h.updated_at,
               NULL::float8, NULL::integer, NULL::float8, NULL::integer, NULL::float8
          FROM hits AS h
         -- the read record (docs/privacy.md): one call with the items in order, as in memory_search
         WHERE (SELECT memory_system._record_read('store_search', v_request, array_agg('store_item'::text),
                                                  array_agg(x.id ORDER BY x.updated_at DESC, x.id DESC)) FROM hits AS x) IS NOT NULL
         ORDER BY h.updated_at DESC, h.id DESC;
        RETURN;
    END IF;

    candidates := greatest(candidates, limit_n + offset_n);

    -- text branch --------------------------------------------------------------------------
    IF v_text THEN
        SELECT b.ids, b.scores INTO v_text_ids, v_text_scores
          FROM nexus._store_search_text(query, v_all, v_lo, v_hi, v_now, v_f.keys, v_f.ops, v_f.operands,
                                        candidates, limit_n + offset_n, df_budget) AS b;
    END IF;

    -- vector branch: HNSW over the agent's partition; an item is as near as its nearest text -------
    IF query_embedding IS NOT NULL THEN
        PERFORM nexus._check_query_embedding(query_embedding);
        SELECT b.ids, b.dists INTO v_vector_ids, v_vector_dists
          FROM nexus._store_search_vector(query_embedding, v_all, v_lo, v_hi, v_now, v_f.keys, v_f.ops,
                                          v_f.operands, candidates) AS b;
    END IF;

    -- fusion: Reciprocal Rank Fusion, as nexus.memory_search -----------------------------------
    WITH txt AS (
        SELECT x.id, x.score, x.rnk::integer AS rnk
          FROM unnest(v_text_ids, v_text_scores) WITH ORDINALITY AS x(id, score, rnk)
    ), vec AS (
        SELECT x.id, 1 - x.dist AS sim, x.rnk::integer AS rnk
          FROM unnest(v_vector_ids, v_vector_dists) WITH ORDINALITY AS x(id, dist, rnk)
    )
    SELECT array_agg(f.id ORDER BY f.rrf DESC, f.id)
      INTO v_ids
      FROM (SELECT coalesce(txt.id, vec.id) AS id,
                   coalesce(1.0 / (rrf_k + txt.rnk), 0) + coalesce(1.0 / (rrf_k + vec.rnk), 0) AS rrf
              FROM txt FULL JOIN vec ON vec.id = txt.id
             ORDER BY rrf DESC, id
             LIMIT limit_n OFFSET offset_n) AS f;
    -- the read record (docs/privacy.md): the items returned, in order
    PERFORM memory_system._record_read('store_search', v_request, array_fill('store_item'::text, ARRAY[coalesce(cardinality(v_ids), 0)]), v_ids);
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    IF refresh_ttl THEN
        UPDATE nexus_memory.store_items AS i SET expires_at = v_now + i.ttl
         WHERE i.agent_id = v_agent AND i.id = ANY (v_ids) AND i.ttl IS NOT NULL;
    END IF;
    RETURN QUERY
    SELECT i.namespace::text[], i.key::text, i.value, i.created_at, i.updated_at,
           (coalesce(1.0 / (rrf_k + txt.rnk), 0) + coalesce(1.0 / (rrf_k + vec.rnk), 0))::float8,
           txt.rnk::integer, txt.score, vec.rnk::integer, 1 - vec.dist
      FROM unnest(v_ids) WITH ORDINALITY AS r(id, ord)
      JOIN nexus_memory.store_items AS i ON i.agent_id = v_agent AND i.id = r.id
      LEFT JOIN unnest(v_text_ids, v_text_scores) WITH ORDINALITY AS txt(id, score, rnk) ON txt.id = r.id
      LEFT JOIN unnest(v_vector_ids, v_vector_dists) WITH ORDINALITY AS vec(id, dist, rnk) ON vec.id = r.id
     ORDER BY r.ord;
END
$$;
COMMENT ON FUNCTION nexus.store_search(text[], text, public.vector, jsonb, integer, integer, boolean, integer, integer,
                                       integer) IS
'Searches the calling agent''s store (LangGraph BaseStore search) under namespace_prefix (whole
labels: {foo} is not {foobar}; {} for all). filter: top-level keys of the value, {"k": v} or
{"k": {"$op": v}} with $eq $ne $gt $gte $lt $lte (numbers compared as numbers, strings as strings).
With a query text and/or a query embedding: ranked by the hybrid fusion of nexus.memory_search
(Reciprocal Rank Fusion of BM25 over the items'' texts and HNSW over their vectors, an item
scoring as its best text in each, 1 / (rrf_k + rank) per branch, rrf_k 5 by default); text only
until the vectors exist. candidates (default 15, at least limit_n + offset_n): items per branch.
df_budget (default 2,000; NULL: exact BM25) bounds the postings the text branch reads, as in
nexus.text_candidates; a prefix or filter that leaves too few of its best texts is searched
exactly. score is the fused score; text_score the BM25 score, vector_score the best cosine
similarity. Without either: the newest first (updated_at DESC), score NULL. limit_n (1-1000) and
offset_n (0-10,000) page the result. refresh_ttl (default true): the items returned expire ttl
from now again.
Errors: NX060 bad namespace prefix, limit, offset, rrf_k, candidates or df_budget; NX061 bad
filter; NX011 query over 64 KiB; NX013 query embedding of the wrong dimension.';


CREATE OR REPLACE FUNCTION nexus.store_list_namespaces(
    prefix     text[] DEFAULT NULL,
    suffix     text[] DEFAULT NULL,
    max_depth  integer DEFAULT NULL,
    limit_n    integer DEFAULT 100,
    offset_n   integer DEFAULT 0)
RETURNS TABLE (namespace text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_pre  integer := coalesce(cardinality(prefix), 0);
    v_suf  integer := coalesce(cardinality(suffix), 0);
BEGIN
    PERFORM memory_system._store_check_namespace(coalesce(prefix, '{}'), 'prefix', true);
    PERFORM memory_system._store_check_namespace(coalesce(suffix, '{}'), 'suffix', true);
    IF max_depth IS NOT NULL AND max_depth < 1 THEN
        RAISE EXCEPTION 'max_depth must be at least 1, got %', max_depth USING ERRCODE = 'NX060';
    END IF;
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 10,000, got %', limit_n USING ERRCODE = 'NX060';
    END IF;
    IF offset_n IS NULL OR offset_n < 0 THEN
        RAISE EXCEPTION 'offset_n must not be negative, got %', offset_n USING ERRCODE = 'NX060';
    END IF;
    RETURN QUERY
    SELECT n.ns::text[]
      FROM (SELECT DISTINCT CASE WHEN max_depth IS NULL THEN i.namespace
                                 ELSE i.namespace[1:max_depth] END AS ns
              FROM nexus_memory.store_items AS i
             WHERE i.agent_id = (current_user::text COLLATE "default")
               AND (i.expires_at IS NULL OR i.expires_at > v_now)
               AND cardinality(i.namespace) >= greatest(v_pre, v_suf)
               -- `*` matches any one label
               AND NOT EXISTS (SELECT FROM unnest(prefix) WITH ORDINALITY AS p(label, n)
                                WHERE p.label <> '*' AND p.label <> i.namespace[p.n])
               AND NOT EXISTS (SELECT FROM unnest(suffix) WITH ORDINALITY AS s(label, n)
                                WHERE s.label <> '*'
                                  AND s.label <> i.namespace[cardinality(i.namespace) - v_suf + s.n])) AS n
     ORDER BY n.ns
     LIMIT limit_n OFFSET offset_n;
END
$$;
COMMENT ON FUNCTION nexus.store_list_namespaces(text[], text[], integer, integer, integer) IS
'The namespaces of the calling agent''s live store items (LangGraph list_namespaces), in
code-point order: those starting with prefix and ending with suffix (a * label matches any one
label), cut to their first max_depth labels (then distinct). Errors: NX060 bad prefix, suffix,
max_depth (at least 1), limit_n (1-10,000) or offset_n.';
