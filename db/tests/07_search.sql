-- Search: the BM25 postings and corpus statistics kept in step with the content by trigger, hybrid
-- search (text, vector, both), its filters and arguments, memory_similar, and isolation: another
-- agent's exact text and exact vector find nothing of it, in any branch.
-- (Query plans at a realistic size are in 08_search_plans.sql.)
BEGIN;
SELECT plan(180);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');
SELECT tests.create_agent('carol');

-- names of the memories (episode and fact ids come from different sequences: kind is part of it)
CREATE TEMP TABLE ids (name text PRIMARY KEY, kind text, id bigint, UNIQUE (kind, id));
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- the names of the memories a query returns (as kind, id), in its order; unknown rows as kind:id
CREATE FUNCTION pg_temp.found(p_sql text) RETURNS text[] LANGUAGE plpgsql
AS $$
DECLARE
    v_out text[];
BEGIN
    EXECUTE format($q$
        SELECT coalesce(array_agg(coalesce(n.name, r.kind || ':' || r.id) ORDER BY r.ord), '{}')
          FROM (SELECT CASE q.kind::text WHEN 'e' THEN 'episode' WHEN 's' THEN 'semantic' ELSE q.kind::text END AS kind,
                       q.id, row_number() OVER () AS ord
                  FROM (%s) AS q) AS r
          LEFT JOIN ids AS n ON n.kind = r.kind AND n.id = r.id$q$, p_sql)
      INTO v_out;
    RETURN v_out;
END
$$;
-- the same, sorted: for sets
CREATE FUNCTION pg_temp.found_set(p_sql text) RETURNS text[] LANGUAGE sql
AS $$ SELECT ARRAY(SELECT x FROM unnest(pg_temp.found(p_sql)) AS x ORDER BY x) $$;
-- a vector of the configured dimension from its first components (the rest 0)
CREATE FUNCTION pg_temp.v(VARIADIC p float8[]) RETURNS public.vector LANGUAGE sql IMMUTABLE
AS $$ SELECT (p || array_fill(0::float8, ARRAY[384 - cardinality(p)]))::float4[]::public.vector $$;
-- stores a vector of the current model for the current content of a memory (as the worker would)
CREATE FUNCTION pg_temp.embed(p_name text, p_vec public.vector) RETURNS void LANGUAGE sql
AS $$
    INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
    SELECT e.agent_id, e.id, (SELECT value FROM memory_system.settings WHERE name = 'embedding_model'), e.content_sha256, p_vec
      FROM nexus_memory.zep_episodic_memory AS e JOIN ids AS n ON n.kind = 'episode' AND n.id = e.id
     WHERE n.name = p_name;
    INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
    SELECT s.agent_id, s.id, (SELECT value FROM memory_system.settings WHERE name = 'embedding_model'), s.content_sha256, p_vec
      FROM nexus_memory.semantic_memories AS s JOIN ids AS n ON n.kind = 'semantic' AND n.id = s.id
     WHERE n.name = p_name;
$$;

-- what the postings and statistics must be, recounted from the content (not with the code under test)
CREATE TEMP VIEW expected_postings AS
SELECT d.agent_id, l.lexeme, d.kind, d.id AS doc_id, coalesce(array_length(l.positions, 1), 1) AS tf,
       (sum(coalesce(array_length(l.positions, 1), 1)) OVER (PARTITION BY d.kind, d.id))::integer AS dl
  FROM (SELECT agent_id, 'e'::"char" AS kind, id, content_tsv FROM nexus_memory.zep_episodic_memory
        UNION ALL
        SELECT agent_id, 's'::"char", id, content_tsv FROM nexus_memory.semantic_memories) AS d
 CROSS JOIN unnest(d.content_tsv) AS l;
CREATE TEMP VIEW expected_stats AS
SELECT d.agent_id, count(*) AS docs,
       coalesce(sum((SELECT sum(coalesce(array_length(l.positions, 1), 1)) FROM unnest(d.content_tsv) AS l)), 0) AS tokens
  FROM (SELECT agent_id, content_tsv FROM nexus_memory.zep_episodic_memory
        UNION ALL SELECT agent_id, content_tsv FROM nexus_memory.semantic_memories) AS d
 GROUP BY d.agent_id;
-- rows that differ between the postings table and the recount (both ways)
CREATE FUNCTION pg_temp.postings_drift() RETURNS bigint LANGUAGE sql
AS $$
    SELECT count(*) FROM (
        (SELECT agent_id, lexeme, kind, doc_id, tf, dl FROM nexus_memory.text_postings
         EXCEPT ALL SELECT * FROM expected_postings)
        UNION ALL
        (SELECT * FROM expected_postings
         EXCEPT ALL SELECT agent_id, lexeme, kind, doc_id, tf, dl FROM nexus_memory.text_postings)) AS d
$$;
-- agents whose summed statistics differ from the recount
CREATE FUNCTION pg_temp.stats_drift() RETURNS bigint LANGUAGE sql
AS $$
    SELECT count(*)
      FROM (SELECT agent_id, sum(docs) AS docs, sum(tokens) AS tokens FROM nexus_memory.text_stats GROUP BY agent_id) AS s
      FULL JOIN expected_stats AS x USING (agent_id)
     WHERE coalesce(s.docs, 0) <> coalesce(x.docs, 0) OR coalesce(s.tokens, 0) <> coalesce(x.tokens, 0)
$$;


-- 1. the BM25 postings follow the content ===========================================================
SET LOCAL ROLE carol;
INSERT INTO ids VALUES ('c_rep', 'episode', nexus.record_episode('seal seal seal walrus'));
INSERT INTO ids VALUES ('c_e2', 'episode', nexus.record_episode('Otters hold hands while sleeping'));
INSERT INTO ids VALUES ('c_f1', 'semantic', nexus.remember_fact('Seals are pinnipeds'));
INSERT INTO ids VALUES ('c_f2', 'semantic', nexus.remember_fact('Otters use stones as tools'));
INSERT INTO nexus_memory.zep_episodic_memory (content)
VALUES ('bulk one about kelp forests'), ('bulk two about kelp and urchins'), ('the and of');
INSERT INTO ids SELECT 'c_bulk_' || id, 'episode', id FROM nexus_memory.zep_episodic_memory
 WHERE content IN ('bulk one about kelp forests', 'bulk two about kelp and urchins', 'the and of');
RESET ROLE;
SELECT is(pg_temp.postings_drift(), 0::bigint, 'after inserts (API and a multi-row INSERT) the postings equal unnest(content_tsv)');
SELECT is(pg_temp.stats_drift(), 0::bigint, 'after inserts text_stats docs and tokens equal a recount');
SELECT results_eq(
    $$SELECT lexeme, tf, dl FROM nexus_memory.text_postings WHERE kind = 'e' AND doc_id = pg_temp.id('c_rep') ORDER BY lexeme$$,
    $$VALUES ('seal', 3, 4), ('walrus', 1, 4)$$,
    'a posting carries the term frequency and the document length in tokens');
SELECT results_eq(
    $$SELECT sum(docs), sum(tokens) FROM nexus_memory.text_stats WHERE agent_id = 'carol'$$,
    $$VALUES (7::numeric, 22::numeric)$$,
    'memories without indexed words (stop words only) count as documents of length 0');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = 'carol'), 20::bigint,
          'carol has one posting per distinct lexeme of each memory');

SET LOCAL ROLE carol;
SELECT lives_ok(format($$SELECT nexus.update_episode(%s, content => 'Otters float on their backs')$$, pg_temp.id('c_e2')),
                'update_episode with new content');
RESET ROLE;
SELECT is(ARRAY(SELECT lexeme FROM nexus_memory.text_postings WHERE kind = 'e' AND doc_id = pg_temp.id('c_e2') ORDER BY 1),
          ARRAY(SELECT l.lexeme FROM nexus_memory.zep_episodic_memory AS e, unnest(e.content_tsv) AS l
                 WHERE e.id = pg_temp.id('c_e2') ORDER BY 1),
          'after a content update the row''s postings are the lexemes of its new content_tsv');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE lexeme = 'sleep'), 0::bigint,
          'a lexeme only the old content had is gone');
SELECT is(pg_temp.postings_drift(), 0::bigint, 'after a content update no posting drifts');
SELECT is(pg_temp.stats_drift(), 0::bigint, 'after a content update the statistics equal a recount');

CREATE TEMP TABLE postings_before AS SELECT * FROM nexus_memory.text_postings;
CREATE TEMP TABLE stats_before AS SELECT agent_id, sum(docs) AS docs, sum(tokens) AS tokens FROM nexus_memory.text_stats GROUP BY agent_id;
SET LOCAL ROLE carol;
UPDATE nexus_memory.zep_episodic_memory SET tags = '{touched}', metadata = '{"m": 1}', importance = 0.1;
RESET ROLE;
SELECT is((SELECT count(*) FROM ((TABLE postings_before EXCEPT ALL TABLE nexus_memory.text_postings)
                                 UNION ALL (TABLE nexus_memory.text_postings EXCEPT ALL TABLE postings_before)) AS d),
          0::bigint, 'an update of everything but the content leaves the postings as they were');
SELECT is((SELECT count(*) FROM ((TABLE stats_before EXCEPT
                                  SELECT agent_id, sum(docs), sum(tokens) FROM nexus_memory.text_stats GROUP BY agent_id)) AS d),
          0::bigint, 'and the statistics');

-- one statement changing the content of some rows (to overlapping words) and not of others
SET LOCAL ROLE carol;
UPDATE nexus_memory.zep_episodic_memory
   SET content = CASE WHEN content LIKE 'bulk%' THEN content || ' kelp kelp' WHEN content = '' THEN 'no longer empty'
                      ELSE content END,
       tags = '{again}';
RESET ROLE;
SELECT is(pg_temp.postings_drift(), 0::bigint, 'a multi-row update changing some contents: no posting drifts');
SELECT is(pg_temp.stats_drift(), 0::bigint, 'a multi-row update changing some contents: statistics equal a recount');
SELECT is((SELECT array_agg(tf ORDER BY doc_id) FROM nexus_memory.text_postings WHERE agent_id = 'carol' AND lexeme = 'kelp'),
          ARRAY[3, 3], 'a lexeme both old and new content have is counted again with its new frequency');

SET LOCAL ROLE carol;
SELECT is(nexus.remember_fact('Seals are pinnipeds', tags => '{dup}'), pg_temp.id('c_f1'), 'a duplicate fact');
RESET ROLE;
SELECT is(pg_temp.postings_drift() + pg_temp.stats_drift(), 0::bigint, 'a deduplicated fact is indexed once');

SET LOCAL ROLE carol;
SELECT ok(nexus.delete_episode(pg_temp.id('c_rep')), 'delete_episode');
SELECT ok(nexus.delete_fact(pg_temp.id('c_f2')), 'delete_fact');
DELETE FROM nexus_memory.zep_episodic_memory WHERE content LIKE 'bulk%';
RESET ROLE;
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE doc_id = pg_temp.id('c_rep') AND kind = 'e'), 0::bigint,
          'a deleted episode leaves no posting');
SELECT is(pg_temp.postings_drift(), 0::bigint, 'after deletes (API and multi-row) no posting drifts');
SELECT is(pg_temp.stats_drift(), 0::bigint, 'after deletes the statistics equal a recount');

-- an episode moved to another agent (by the owner) moves its postings and counts
UPDATE nexus_memory.zep_episodic_memory SET agent_id = 'bob' WHERE id = pg_temp.id('c_e2');
SELECT is((SELECT array_agg(DISTINCT agent_id) FROM nexus_memory.text_postings WHERE kind = 'e' AND doc_id = pg_temp.id('c_e2')),
          ARRAY['bob'], 'a memory moved to another agent moves its postings');
SELECT is(pg_temp.postings_drift() + pg_temp.stats_drift(), 0::bigint, 'and the statistics of both agents');
DELETE FROM nexus_memory.zep_episodic_memory WHERE id = pg_temp.id('c_e2');
SELECT is(pg_temp.stats_drift(), 0::bigint, 'statistics in step after every change');


-- 2. the search corpus ===============================================================================
-- alice: four embedded episodes, one not embedded, two embedded facts, two recency twins
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content, session_id, tags, metadata, created_at) VALUES
    ('The walrus basks on the arctic ice floe', 's1', '{animal,arctic}', '{"src": "doc", "lang": "en"}', now() - interval '1 day'),
    ('A penguin colony gathers on the antarctic shore', 's2', '{animal}', '{"src": "web"}', now() - interval '3 days'),
    ('Quarterly budget meeting moved to Thursday', 's1', '{work}', '{"src": "doc"}', now() - interval '10 days'),
    ('Walrus tusks are elongated canine teeth', 's2', '{animal}', '{}', now() - interval '30 days'),
    ('A lighthouse keeper logbook entry', NULL, '{}', '{}', now() - interval '2 days'),
    ('twin twin record record', NULL, '{}', '{}', now() - interval '100 days'),
    ('twin record of today in the new year', NULL, '{}', '{}', now() - interval '1 hour');
INSERT INTO nexus_memory.semantic_memories (content, tags, metadata, created_at) VALUES
    ('Walruses live in the arctic ocean', '{animal,arctic}', '{"src": "doc"}', now() - interval '2 days'),
    ('Budgets are approved by the board', '{work}', '{"src": "web"}', now() - interval '5 days');
RESET ROLE;
INSERT INTO ids
SELECT n, 'episode', (SELECT id FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice' AND content = c)
  FROM (VALUES ('eA', 'The walrus basks on the arctic ice floe'), ('eB', 'A penguin colony gathers on the antarctic shore'),
               ('eC', 'Quarterly budget meeting moved to Thursday'), ('eD', 'Walrus tusks are elongated canine teeth'),
               ('eN', 'A lighthouse keeper logbook entry'), ('tOld', 'twin twin record record'),
               ('tNew', 'twin record of today in the new year')) AS v (n, c)
UNION ALL
SELECT n, 'semantic', (SELECT id FROM nexus_memory.semantic_memories WHERE agent_id = 'alice' AND content = c)
  FROM (VALUES ('fA', 'Walruses live in the arctic ocean'), ('fB', 'Budgets are approved by the board')) AS v (n, c);
SELECT pg_temp.embed('eA', pg_temp.v(1));
SELECT pg_temp.embed('eB', pg_temp.v(0, 1));
SELECT pg_temp.embed('eC', pg_temp.v(0, 0, 1));
SELECT pg_temp.embed('eD', pg_temp.v(0.6, 0, 0, 0.8));
SELECT pg_temp.embed('fA', pg_temp.v(0.8, 0, 0, 0, 0.6));
SELECT pg_temp.embed('fB', pg_temp.v(-0.1, 0, 0, 0, 0, 0.99499));
-- bob: alice's texts and vectors exactly, and one of his own
SET LOCAL ROLE bob;
INSERT INTO ids VALUES
    ('b_eA', 'episode', nexus.record_episode('The walrus basks on the arctic ice floe', session => 's1', tags => '{animal,arctic}')),
    ('b_fA', 'semantic', nexus.remember_fact('Walruses live in the arctic ocean')),
    ('b_own', 'episode', nexus.record_episode('Bob repairs the walrus enclosure fence'));
RESET ROLE;
SELECT pg_temp.embed('b_eA', pg_temp.v(1));
SELECT pg_temp.embed('b_fA', pg_temp.v(0.8, 0, 0, 0, 0.6));
SELECT pg_temp.embed('b_own', pg_temp.v(0, 1));
SELECT is((SELECT count(*) FROM ids WHERE id IS NULL), 0::bigint, 'every memory of the corpus is named');


-- 3. memory_search ===================================================================================
SET LOCAL ROLE alice;
-- text only
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus')$$), ARRAY['eA', 'eD', 'fA'],
          'text only: walrus finds the two episodes and the fact (walruses, stemmed)');
SELECT ok((SELECT bool_and(text_rank IS NOT NULL AND text_score > 0 AND vector_rank IS NULL AND vector_score IS NULL)
             FROM nexus.memory_search('walrus')), 'text only: every row has a text rank and score, no vector rank');
SELECT is((SELECT array_agg(text_rank ORDER BY text_rank) FROM nexus.memory_search('walrus')), ARRAY[1, 2, 3],
          'text ranks are 1..n');
SELECT is((SELECT name FROM nexus.memory_search('walrus') AS r JOIN ids AS n ON n.kind = r.kind AND n.id = r.id
            WHERE r.text_rank = 1), 'fA', 'BM25 ranks the shortest document with the term first');
SELECT matches((SELECT snippet FROM nexus.memory_search('walrus') WHERE kind = 'episode' AND id = pg_temp.id('eA')),
               '^\*\*walrus\*\* basks on the arctic ice floe$', 'the snippet highlights the matched term');
SELECT is((SELECT snippet FROM nexus.memory_search(query_embedding => pg_temp.v(0, 0, 1), limit_n => 1)),
          'Quarterly budget meeting moved to Thursday', 'without a query text the snippet is the start of the content');
SELECT results_eq(
    $$SELECT content, session_id, tags, metadata, created_at FROM nexus.memory_search('ice floe')$$,
    $$SELECT content, session_id, tags, metadata, created_at FROM nexus_memory.zep_episodic_memory WHERE id = pg_temp.id('eA')$$,
    'a result carries the memory''s content, session, tags, metadata and creation time');
-- the BM25 score of a one-term query, from the statistics and the posting
SELECT ok(abs((SELECT score FROM nexus.text_candidates('penguin'))
              - (SELECT ln(1 + (s.n - 1 + 0.5) / (1 + 0.5)) * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * p.dl / s.avgdl))
                   FROM nexus_memory.text_postings AS p,
                        (SELECT sum(docs)::float8 AS n, sum(tokens)::float8 / sum(docs) AS avgdl
                           FROM nexus_memory.text_stats WHERE agent_id = 'alice') AS s
                  WHERE p.agent_id = 'alice' AND p.lexeme = 'penguin')) < 1e-9,
          'text_candidates computes BM25 (k1 1.2, b 0.75) from the agent''s statistics');
-- natural-language OR semantics
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus zebra')$$), ARRAY['eA', 'eD', 'fA'],
          'OR semantics: a word absent from the corpus does not stop the others matching');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('where did I see a penguin or a walrus?')$$),
          ARRAY['eA', 'eB', 'eD', 'fA'], 'a natural-language question finds rows with any of its words');
SELECT is_empty($$SELECT * FROM nexus.memory_search('zebra giraffe')$$, 'words absent from the corpus find nothing');
SELECT is_empty($$SELECT * FROM nexus.memory_search('the and of')$$, 'stop words only find nothing');
-- websearch mode
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('"arctic ice"', text_mode => 'websearch')$$),
          ARRAY['eA'], 'websearch: a quoted phrase matches the words in sequence only');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('"arctic ice"')$$),
          ARRAY['eA', 'fA'], 'natural: the same quotes are just words (OR)');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus -tusks', text_mode => 'websearch')$$),
          ARRAY['eA', 'fA'], 'websearch: -word excludes the rows that have it');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus or penguin', text_mode => 'websearch')$$),
          ARRAY['eA', 'eB', 'eD', 'fA'], 'websearch: or');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus arctic', text_mode => 'websearch')$$),
          ARRAY['eA', 'fA'], 'websearch: words without or must all match');
-- vector only
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(0, 0, 1), limit_n => 1)$$),
          ARRAY['eC'], 'vector only: the row whose vector equals the query comes first');
SELECT results_eq(
    $$SELECT vector_rank, round(vector_score::numeric, 6), text_rank FROM nexus.memory_search(query_embedding => pg_temp.v(0, 0, 1), limit_n => 1)$$,
    $$VALUES (1, 1.000000::numeric, NULL::integer)$$, 'vector only: rank 1, cosine similarity 1, no text rank');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), limit_n => 3, neighbour_weight => 0)$$),
          ARRAY['eA', 'fA', 'eD'], 'vector only, neighbour_weight 0: ordered by cosine distance');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), limit_n => 3)$$),
          ARRAY['eA', 'eD', 'eC'],
          'vector only, by default: eC (rank 5), recorded next to eA (rank 1) in session s1, rises above fA (rank 2); eD has eB beside it');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1, 1, 1, 1, 1, 1))$$),
          ARRAY['eA', 'eB', 'eC', 'eD', 'fA', 'fB'], 'vector only: every embedded memory, none without a vector');
-- hybrid
SELECT is(ARRAY(SELECT x FROM unnest((pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', pg_temp.v(0, 1))$$))[1:3]) AS x
                 ORDER BY x) || (pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', pg_temp.v(0, 1))$$))[4],
          ARRAY['eA', 'eD', 'fA', 'eB'],
          'hybrid: the rows found by both branches rank above the top row of the vector branch alone');
SELECT ok((SELECT bool_and((text_rank IS NOT NULL AND vector_rank IS NOT NULL) = (n <= 3))
             FROM (SELECT r.*, row_number() OVER (ORDER BY fused_score DESC) AS n
                     FROM nexus.memory_search('walrus', pg_temp.v(0, 1)) AS r) AS r),
          'hybrid: exactly the first three rows have both ranks');
SELECT ok((SELECT bool_and(abs(fused_score - (coalesce(1.0 / (5 + text_rank), 0) + coalesce(1.0 / (5 + vector_rank), 0))) < 1e-12)
             FROM nexus.memory_search('walrus', pg_temp.v(0, 1), neighbour_weight => 0)),
          'hybrid: fused_score is the reciprocal rank fusion of both ranks (k 5 by default)');
SELECT ok((SELECT bool_and(abs(fused_score - (coalesce(1.0 / (60 + text_rank), 0) + coalesce(1.0 / (60 + vector_rank), 0))) < 1e-12)
             FROM nexus.memory_search('walrus', pg_temp.v(0, 1), rrf_k => 60, neighbour_weight => 0)),
          'hybrid: with rrf_k 60');
SELECT ok(array_position(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', pg_temp.v(0.6, 0, 0, 0.8))$$), 'eA')
          < array_position(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', pg_temp.v(0.6, 0, 0, 0.8))$$), 'eD'),
          'hybrid: eD (text rank 3, vector rank 1) outscores eA (text rank 2, vector rank 2), but eA, on the same topic (cosine 0.6) and 29 days newer, takes its place (nexus._newer_first)');
SELECT results_eq(
    $$SELECT n.name, r.text_rank, r.vector_rank FROM nexus.memory_search('walrus', pg_temp.v(0.6, 0, 0, 0.8)) AS r
        JOIN ids AS n ON n.kind = r.kind AND n.id = r.id WHERE n.name IN ('eA', 'eD') ORDER BY n.name$$,
    $$VALUES ('eA', 2, 2), ('eD', 3, 1)$$, 'hybrid: the ranks of both branches are reported');
SELECT ok((SELECT bool_and(vector_rank IS NULL) FROM nexus.memory_search('walrus', pg_temp.v(1), vector_weight => 0)),
          'vector_weight 0: the vector branch is not used');
SELECT ok((SELECT bool_and(text_rank IS NULL) FROM nexus.memory_search('walrus', pg_temp.v(1), text_weight => 0)),
          'text_weight 0: the text branch is not used');
SELECT is((SELECT count(*) FROM nexus.memory_search('walrus penguin budget lighthouse', pg_temp.v(1, 1, 1, 1, 1, 1), limit_n => 2)),
          2::bigint, 'limit_n caps the rows returned');

-- filters, in each branch: T is a text query matching eA..eD, eN, fA, fB; V a vector near all six vectors
SELECT is(pg_temp.found_set(format('SELECT kind, id FROM nexus.memory_search(%s, %s)', b.args, w.filter)),
          CASE b.branch WHEN 'text' THEN w.text_expected ELSE w.vector_expected END::text[],
          format('%s branch, %s', b.branch, w.filter))
  FROM (VALUES ('text', $$'walrus penguin budget lighthouse'$$),
               ('vector', $$query_embedding => pg_temp.v(1, 1, 1, 1, 1, 1)$$)) AS b (branch, args)
 CROSS JOIN (VALUES
        ('kinds => ''{episode}''', '{eA,eB,eC,eD,eN}', '{eA,eB,eC,eD}'),
        ('kinds => ''{semantic}''', '{fA,fB}', '{fA,fB}'),
        ('session => ''s1''', '{eA,eC}', '{eA,eC}'),
        ('since => now() - interval ''4 days''', '{eA,eB,eN,fA}', '{eA,eB,fA}'),
        ('until => now() - interval ''4 days''', '{eC,eD,fB}', '{eC,eD,fB}'),
        ('until => now() - interval ''3 days''', '{eC,eD,fB}', '{eC,eD,fB}'),
        ('since => now() - interval ''3 days'', until => now() - interval ''1 day''', '{eB,eN,fA}', '{eB,fA}'),
        ('tags_all => ''{animal,arctic}''', '{eA,fA}', '{eA,fA}'),
        ('tags_all => ''{work}''', '{eC,fB}', '{eC,fB}'),
        ('metadata_contains => ''{"src": "doc"}''', '{eA,eC,fA}', '{eA,eC,fA}'),
        ('metadata_contains => ''{"src": "doc", "lang": "en"}''', '{eA}', '{eA}'),
        ('session => ''s2'', tags_all => ''{animal}''', '{eB,eD}', '{eB,eD}')
     ) AS w (filter, text_expected, vector_expected)
 ORDER BY b.branch, w.filter;
SELECT is_empty($$SELECT * FROM nexus.memory_search('walrus', kinds => '{semantic}', session => 's1')$$,
                'semantic memories have no session: kinds semantic with a session finds nothing');

-- recency
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('twin record')$$), ARRAY['tOld', 'tNew'],
          'without recency the better text match comes first, however old');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('twin record', recency_weight => 1)$$), ARRAY['tNew', 'tOld'],
          'recency_weight moves the newer row ahead');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('twin record', recency_weight => 1,
                                                                    recency_half_life => '1 minute')$$),
          ARRAY['tOld', 'tNew'], 'with a half-life much shorter than both ages recency no longer decides');

-- df_budget
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.text_candidates('walrus penguin', df_budget => 1)$$), ARRAY['eB'],
          'df_budget: the common term is dropped, the rarest term kept');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.text_candidates('walrus', df_budget => 1)$$), ARRAY['eA', 'eD', 'fA'],
          'df_budget: the rarest term is kept even when its postings exceed the budget');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.text_candidates('walrus penguin', df_budget => 4)$$),
          ARRAY['eA', 'eB', 'eD', 'fA'], 'df_budget: terms whose postings fit the budget are all kept');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.memory_search('walrus penguin', df_budget => 1)$$), ARRAY['eB'],
          'memory_search passes df_budget on');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('walrus arctic', df_budget => 2)$$), ARRAY['fA', 'eA'],
          'df_budget: the rarer term (arctic) finds the candidates, the common one (walrus) finds none of its own');
SELECT results_eq(
    $$SELECT kind, id, round(score::numeric, 9) FROM nexus.text_candidates('walrus arctic', df_budget => 2)$$,
    $$SELECT kind, id, round(score::numeric, 9) FROM nexus.text_candidates('walrus arctic') WHERE id IN (pg_temp.id('eA'), pg_temp.id('fA'))
        AND (kind, id) IN (('e', pg_temp.id('eA')), ('s', pg_temp.id('fA')))$$,
    'df_budget: the pruned term still scores the candidates found (same scores and order as without a budget)');
SELECT is(pg_temp.found_set($$SELECT kind, id FROM nexus.text_candidates('walrus penguin', kinds => '{semantic}')$$), ARRAY['fA'],
          'text_candidates: kinds');
SELECT is((SELECT count(*) FROM nexus.text_candidates('walrus penguin', candidates => 2)), 2::bigint, 'text_candidates: candidates');

-- bad input
SELECT throws_ok(format('SELECT * FROM nexus.memory_search(%s)', a), 'NX030', NULL, format('memory_search(%s)', a))
  FROM unnest(ARRAY['', 'NULL', $$''$$, $$'   '$$, $$NULL, NULL$$]) AS a;
SELECT throws_ok(format($$SELECT * FROM nexus.memory_search('walrus', %s)$$, a), 'NX031', NULL, format('memory_search(''walrus'', %s)', a))
  FROM unnest(ARRAY[
      'limit_n => 0', 'limit_n => 1001', 'limit_n => NULL', 'candidates => 0', 'candidates => 1001',
      $$text_mode => 'boolean'$$, 'text_mode => NULL', 'rrf_k => 0', 'rrf_k => NULL',
      'text_weight => -1', 'vector_weight => -0.5', 'recency_weight => -1', $$text_weight => 'NaN'$$,
      'vector_weight => NULL', $$recency_half_life => '0'$$, $$recency_half_life => '-1 day'$$,
      $$kinds => '{}'$$, $$kinds => '{episode,fact}'$$, $$kinds => '{episode,NULL}'$$, 'kinds => NULL',
      'df_budget => 0']) AS a;
SELECT throws_ok($$SELECT * FROM nexus.memory_search(repeat('walrus ', 9363))$$, 'NX011', NULL,
                 'memory_search with a query over 64 KiB');
SELECT lives_ok($$SELECT * FROM nexus.memory_search(repeat('x', 65536))$$, 'memory_search with a query of exactly 64 KiB');
SELECT throws_ok($$SELECT * FROM nexus.memory_search(query_embedding => '[1,0,0]')$$, 'NX013', NULL,
                 'memory_search with a vector of 3 dimensions');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('walrus', array_fill(0.1::real, ARRAY[768])::public.vector)$$, 'NX013', NULL,
                 'memory_search with a vector of 768 dimensions');
SELECT throws_ok(format('SELECT * FROM nexus.text_candidates(%s)', a), 'NX031', NULL, format('text_candidates(%s)', a))
  FROM unnest(ARRAY[$$'x', candidates => 0$$, $$'x', candidates => 1001$$, $$'x', df_budget => -1$$,
                    $$'x', kinds => '{}'$$, $$'x', kinds => '{nope}'$$]) AS a;

-- a vector of another model is not searched
RESET ROLE;
UPDATE nexus_memory.episode_embeddings SET model = 'some-older-model' WHERE agent_id = 'alice' AND episode_id = pg_temp.id('eB');
SET LOCAL ROLE alice;
SELECT ok((SELECT NOT bool_or(kind = 'episode' AND id = pg_temp.id('eB')) FROM nexus.memory_search(query_embedding => pg_temp.v(0, 1))),
          'a vector of another model than the configured one is not searched');


-- 4. memory_similar ==================================================================================
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('episode', pg_temp.id('eA'))$$),
          ARRAY['fA', 'eD', 'eC', 'fB'], 'memory_similar: the nearest memories by the stored vector, itself excluded');
SELECT is((SELECT array_agg(vector_rank ORDER BY vector_rank) FROM nexus.memory_similar('episode', pg_temp.id('eA'))),
          ARRAY[2, 3, 4, 5], 'memory_similar: ranks of the search (rank 1 is the memory itself)');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('semantic', pg_temp.id('fA'), limit_n => 2)$$),
          ARRAY['eA', 'eD'], 'memory_similar of a fact, limited');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('episode', pg_temp.id('eA'), kinds => '{semantic}')$$),
          ARRAY['fA', 'fB'], 'memory_similar restricted to kinds');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('episode', %s)$$, pg_temp.id('eN')), 'NX034', NULL,
                 'memory_similar of a memory without a vector yet');
SELECT throws_ok($$SELECT * FROM nexus.memory_similar('episode', -1)$$, 'NX033', NULL, 'memory_similar of an id that does not exist');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('episode', %s)$$, pg_temp.id('b_eA')), 'NX033', NULL,
                 'memory_similar of another agent''s episode: not found');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('semantic', %s)$$, pg_temp.id('b_fA')), 'NX033', NULL,
                 'memory_similar of another agent''s fact: not found');
SELECT throws_ok(format('SELECT * FROM nexus.memory_similar(%s)', a), 'NX031', NULL, format('memory_similar(%s)', a))
  FROM unnest(ARRAY[$$'fact', 1$$, 'NULL, 1', $$'episode', 1, limit_n => 0$$, $$'episode', 1, limit_n => 1000$$,
                    $$'episode', 1, limit_n => NULL$$]) AS a;
RESET ROLE;


-- 5. isolation =======================================================================================
-- bob asks with alice's exact texts and exact vectors: he finds his own copies, never hers
CREATE TEMP TABLE alice_rows AS
SELECT 'episode' AS kind, id FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'
UNION ALL SELECT 'semantic', id FROM nexus_memory.semantic_memories WHERE agent_id = 'alice';
GRANT SELECT ON alice_rows TO PUBLIC;
SET LOCAL ROLE bob;
SELECT is(pg_temp.found_set(format('SELECT kind, id FROM nexus.memory_search(%s)', a)), expected::text[],
          format('bob: memory_search(%s) finds only his own rows', a))
  FROM (VALUES
      ($$'The walrus basks on the arctic ice floe'$$, '{b_eA,b_fA,b_own}'),
      ($$'"walrus basks on the arctic ice floe"', text_mode => 'websearch'$$, '{b_eA}'),
      ($$query_embedding => pg_temp.v(1)$$, '{b_eA,b_fA,b_own}'),
      ($$query_embedding => pg_temp.v(0.6, 0, 0, 0.8)$$, '{b_eA,b_fA,b_own}'),
      ($$'Walrus tusks are elongated canine teeth', pg_temp.v(0.6, 0, 0, 0.8)$$, '{b_eA,b_fA,b_own}'),
      ($$'penguin budget lighthouse twin', pg_temp.v(0, 0, 1)$$, '{b_eA,b_fA,b_own}'),
      ($$'walrus', session => 's1', tags_all => '{animal,arctic}'$$, '{b_eA}')) AS t (a, expected);
SELECT is_empty($$SELECT r.kind, r.id FROM nexus.memory_search('walrus penguin budget lighthouse twin', pg_temp.v(1, 1, 1, 1, 1, 1),
                                                                limit_n => 1000, candidates => 1000) AS r
                   JOIN alice_rows AS a ON a.kind = r.kind AND a.id = r.id$$,
                'bob: the widest search returns none of alice''s rows');
SELECT is_empty($$SELECT * FROM nexus.text_candidates('walrus penguin budget lighthouse twin') AS c
                  WHERE (c.kind, c.id) NOT IN (SELECT 'e', id FROM ids WHERE name IN ('b_eA', 'b_own')
                                               UNION ALL SELECT 's', id FROM ids WHERE name = 'b_fA')$$,
                'bob: text_candidates returns only his own memories');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('episode', pg_temp.id('b_eA'))$$), ARRAY['b_fA', 'b_own'],
          'bob: memory_similar of his copy finds his own rows, not alice''s identical vectors');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('episode', %s)$$, pg_temp.id('eA')), 'NX033', NULL,
                 'bob: memory_similar of alice''s episode: not found');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('semantic', %s)$$, pg_temp.id('fA')), 'NX033', NULL,
                 'bob: memory_similar of alice''s fact: not found');
-- and directly
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id <> 'bob'), 0::bigint, 'bob reads no posting of another agent');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE lexeme = 'penguin'), 0::bigint,
          'bob does not see alice''s postings even by lexeme');
SELECT isnt((SELECT count(*) FROM nexus_memory.text_postings), 0::bigint, 'bob reads his own postings');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM nexus_memory.text_stats), ARRAY['bob'], 'bob reads only his own statistics');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM memory_system.embeddings_queue), ARRAY['bob'], 'bob reads only his own queue items');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE agent_id = 'alice'), 0::bigint,
          'bob reads no queue item of alice''s, even asking for them');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM nexus_memory.episode_embeddings
                UNION SELECT DISTINCT agent_id FROM nexus_memory.semantic_memory_embeddings), ARRAY['bob'],
          'bob reads only his own vectors');
RESET ROLE;
SELECT cmp_ok((SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = 'alice'), '>', 30::bigint,
              'alice has postings bob could have seen');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE agent_id = 'alice'), 9::bigint,
          'alice has queue items bob could have seen');


-- 6. a stale vector is never shown for new content ===================================================
SET LOCAL ROLE alice;
SELECT lives_ok(format($$SELECT nexus.update_episode(%s, content => 'Quarterly budget meeting moved to Friday')$$, pg_temp.id('eC')),
                'alice rewrites an embedded episode');
SELECT is((SELECT embedded FROM nexus.get_episode(pg_temp.id('eC'))), false, 'get_episode: its new content is not embedded');
SELECT is((SELECT vector_rank FROM nexus.memory_search('Friday', pg_temp.v(0, 0, 1)) WHERE kind = 'episode' AND id = pg_temp.id('eC')),
          NULL::integer, 'memory_search: the vector of the old content is not used for the new content');
SELECT throws_ok(format($$SELECT * FROM nexus.memory_similar('episode', %s)$$, pg_temp.id('eC')), 'NX034', NULL,
                 'memory_similar of a rewritten episode: not embedded yet (as get_episode says)');
RESET ROLE;


-- 6b. pruning at scale and small agents in a crowded partition ======================================
SELECT tests.create_agent('dave');
-- 5,000 episodes (consecutive ids): every one with zebra, one in two with okapi, one in 100 with quagga
INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content)
SELECT 'dave', concat_ws(' ', 'zebra', CASE WHEN g % 2 = 0 THEN 'okapi' END, CASE WHEN g % 100 = 0 THEN 'quagga' END, 'n' || g)
  FROM generate_series(1, 5000) AS g;
-- 50 of them with a vector
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT e.agent_id, e.id, (SELECT value FROM memory_system.settings WHERE name = 'embedding_model'), e.content_sha256,
       pg_temp.v(1, (e.id % 50)::float8 / 10, (e.id % 7)::float8)
  FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = 'dave' ORDER BY e.id LIMIT 50;
CREATE TEMP TABLE dave_part AS
SELECT x.tableoid AS part,
       (SELECT i.indexrelid FROM pg_catalog.pg_index AS i
         WHERE i.indrelid = x.tableoid AND i.indexrelid::regclass::text LIKE '%embedding_idx') AS hnsw
  FROM nexus_memory.episode_embeddings AS x WHERE x.agent_id = 'dave' LIMIT 1;
GRANT SELECT ON dave_part TO PUBLIC;
SET LOCAL ROLE dave;
SELECT results_eq(
    $$SELECT kind, id, round(score::numeric, 9) FROM nexus.text_candidates('zebra okapi quagga', df_budget => 100000)$$,
    $$SELECT kind, id, round(score::numeric, 9) FROM nexus.text_candidates('zebra okapi quagga', df_budget => NULL)$$,
    'df_budget: a postings list over 256 is estimated from where its 256th posting falls (exact for evenly spread ids)');
SELECT is((SELECT count(*) FROM nexus.text_candidates('zebra okapi quagga', candidates => 1000, df_budget => 3000)), 1000::bigint,
          'df_budget 3,000 prunes zebra (5,000 postings): the kept terms still fill the candidates');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('zebra okapi quagga', candidates => 50, df_budget => 3000)$$),
          pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('zebra okapi quagga', candidates => 50, df_budget => NULL)$$),
          'the pruned term (zebra, in every memory) still scores the pool: same ranking as unpruned');
RESET ROLE;
SELECT is(pg_get_function_arguments('nexus.memory_search(text, public.vector, integer, text[], text, timestamptz, timestamptz, text[], jsonb, text, integer, float8, float8, float8, interval, integer, integer, float8, integer, timestamptz, boolean, text[], text)'::regprocedure)
              ~ 'df_budget integer DEFAULT 10000', true, 'memory_search: df_budget defaults to 10,000');
-- dave's 50 vectors are a thousandth of a partition of 1,000,000 rows: an exact scan, not HNSW
UPDATE pg_catalog.pg_class SET reltuples = 1000000 WHERE oid = (SELECT part FROM dave_part);
CREATE TEMP TABLE hnsw_scans AS SELECT pg_stat_get_xact_numscans(hnsw) AS n FROM dave_part;
GRANT SELECT ON hnsw_scans TO PUBLIC;
SET LOCAL ROLE dave;
SELECT results_eq(
    $$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1, 2.2, 3), limit_n => 50, kinds => '{episode}')
       ORDER BY vector_rank LIMIT 10$$,
    $$SELECT x.episode_id FROM nexus_memory.episode_embeddings AS x WHERE x.agent_id = 'dave'
       ORDER BY x.embedding OPERATOR(public.<=>) pg_temp.v(1, 2.2, 3), x.episode_id LIMIT 10$$,
    'a small agent in a crowded partition: the exact top 10');
SELECT is((SELECT pg_stat_get_xact_numscans(hnsw) FROM dave_part), (SELECT n FROM hnsw_scans),
          'a small agent in a crowded partition: no HNSW scan');
RESET ROLE;

-- 7. truncate =========================================================================================
TRUNCATE nexus_memory.semantic_memories CASCADE;
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE kind = 's'), 0::bigint, 'TRUNCATE of the facts drops their postings');
SELECT is(pg_temp.postings_drift() + pg_temp.stats_drift(), 0::bigint, 'and recounts the statistics; the episodes'' postings stay');
SELECT isnt((SELECT count(*) FROM nexus_memory.text_postings), 0::bigint, 'episode postings are still there');
TRUNCATE nexus_memory.zep_episodic_memory CASCADE;
SELECT is((SELECT count(*) FROM nexus_memory.text_postings), 0::bigint, 'TRUNCATE of the episodes drops every posting');
SELECT is((SELECT coalesce(sum(docs), 0) + coalesce(sum(tokens), 0) FROM nexus_memory.text_stats), 0::numeric,
          'and leaves no document counted');
SET LOCAL ROLE alice;
INSERT INTO ids VALUES ('after', 'episode', nexus.record_episode('walrus after the truncate'));
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus')$$), ARRAY['after'],
          'search works again on new memories after a truncate');
RESET ROLE;
SELECT is(pg_temp.postings_drift() + pg_temp.stats_drift(), 0::bigint, 'postings and statistics in step at the end');

SELECT * FROM finish();
ROLLBACK;
