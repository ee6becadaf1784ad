-- Search over facts that change (docs/facts.md, docs/search.md): memory_search, text_candidates and
-- memory_similar find the facts that hold now by default, those that held at as_of (at every
-- boundary), all of them with include_history, each hit with its validity; a fact that does not
-- hold takes no candidate's place in any branch; memory_stats counts current and ended facts;
-- another agent's facts never appear.
BEGIN;
SELECT plan(50);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');
SELECT tests.create_agent('carol');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint, kind "char" DEFAULT 's');
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- T(n): n days into 2024
CREATE FUNCTION pg_temp.t(p_day float8) RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT timestamptz '2024-01-01 00:00+00' + p_day * interval '1 day' $$;
-- a vector of the configured dimension from its first components (the rest 0)
CREATE FUNCTION pg_temp.v(VARIADIC p float8[]) RETURNS public.vector LANGUAGE sql IMMUTABLE
AS $$ SELECT (p || array_fill(0::float8, ARRAY[384 - cardinality(p)]))::float4[]::public.vector $$;
-- the names of the rows a search returns, in its order (kind e or s and id; else kind and id)
CREATE FUNCTION pg_temp.found(p_sql text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE v_out text[];
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(coalesce(n.name, r.kind || r.id::text) ORDER BY r.ord), ''{}'')
                      FROM (SELECT q.kind::text AS kind, q.id, row_number() OVER () AS ord FROM (%s) AS q) AS r
                      LEFT JOIN ids AS n ON n.id = r.id AND n.kind = left(r.kind, 1)', p_sql)
      INTO v_out;
    RETURN v_out;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.found(text) TO PUBLIC;

SET LOCAL ROLE alice;
-- a key's history: the old value holds [T0, T10), the new one from T10; BM25 prefers the old
-- text ('walrus' three times) and so does the vector nearest v(1)
INSERT INTO ids SELECT 'old', nexus.remember_fact('walrus walrus walrus', tags => '{zoo}', key => 'zoo.animal',
                                                  valid_from => pg_temp.t(0));
INSERT INTO ids SELECT 'new', nexus.remember_fact('walrus', tags => '{zoo}', key => 'zoo.animal',
                                                  valid_from => pg_temp.t(10));
-- invalidated at T50; to come in a year; ending tomorrow (it still holds)
INSERT INTO ids SELECT 'tea', nexus.remember_fact('The user drinks tea', valid_from => pg_temp.t(0));
SELECT nexus.invalidate_fact(pg_temp.id('tea'), at => pg_temp.t(50));
INSERT INTO ids SELECT 'soon', nexus.remember_fact('The user will drink coffee', key => 'user.next',
                                                   valid_from => now() + interval '1 year');
INSERT INTO ids SELECT 'hotel', nexus.remember_fact('The user sleeps at a hotel', key => 'user.stay',
                                                    valid_from => pg_temp.t(0));
SELECT nexus.invalidate_fact(pg_temp.id('hotel'), at => now() + interval '1 day');
-- episodes are history: never left out
INSERT INTO ids SELECT 'said', nexus.record_episode('The user said a walrus drinks tea'), 'e';
RESET ROLE;
SET LOCAL ROLE bob;
INSERT INTO ids SELECT 'bobs', nexus.remember_fact('walrus walrus walrus walrus', key => 'zoo.animal',
                                                   valid_from => pg_temp.t(0));
RESET ROLE;
-- vectors as the worker would store them
INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
SELECT s.agent_id, s.id, memory_system._embedding_model(), s.content_sha256, v.vec
  FROM (VALUES ('old', pg_temp.v(1)), ('new', pg_temp.v(0.9, 0.436)), ('tea', pg_temp.v(0, 1)),
               ('soon', pg_temp.v(0, 0.9, 0.436)), ('hotel', pg_temp.v(0, 0, 1)), ('bobs', pg_temp.v(1))) AS v (name, vec)
  JOIN ids AS n ON n.name = v.name AND n.kind = 's'
  JOIN nexus_memory.semantic_memories AS s ON s.id = n.id;
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256, pg_temp.v(0, 0, 0, 1)
  FROM nexus_memory.zep_episodic_memory AS e WHERE e.id = (SELECT pg_temp.id('said'));

SET LOCAL ROLE alice;
-- true now, by default, in every branch ----------------------------------------------------------
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', kinds => '{semantic}')$$),
          ARRAY['new'], 'text: the fact that holds, not the one it replaced');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus')$$), ARRAY['new', 'said'],
          'text: episodes are never left out');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', kinds => '{semantic}', text_mode => 'websearch')$$),
          ARRAY['new'], 'websearch: the fact that holds');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', kinds => '{semantic}', tags_all => '{zoo}')$$),
          ARRAY['new'], 'text with a filter: the fact that holds');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), kinds => '{semantic}', limit_n => 3)$$),
          ARRAY['new', 'hotel'], 'vector: the facts that hold (one ending tomorrow does), not the replaced, invalidated or future ones');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), kinds => '{semantic}', tags_all => '{zoo}')$$),
          ARRAY['new'], 'vector with a filter: the fact that holds');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('tea coffee', kinds => '{semantic}')$$),
          ARRAY[]::text[], 'text: an invalidated fact and one still to come are not found now');

-- a fact that does not hold takes no candidate's place --------------------------------------------
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('walrus', kinds => '{semantic}', candidates => 1)$$),
          ARRAY['new'], 'text_candidates: one candidate, the fact that holds, though the replaced one scores higher');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('walrus', kinds => '{semantic}', candidates => 1, include_history => true)$$),
          ARRAY['old'], 'text_candidates with include_history: the replaced one scores higher');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('walrus', kinds => '{semantic}', candidates => 1, df_budget => NULL)$$),
          ARRAY['new'], 'text_candidates, exact BM25: the fact that holds');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', kinds => '{semantic}', candidates => 1, limit_n => 1, text_mode => 'websearch')$$),
          ARRAY['new'], 'websearch, one candidate: the fact that holds');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), kinds => '{semantic}', candidates => 1, limit_n => 1)$$),
          ARRAY['new'], 'vector, one candidate: the fact that holds, though the replaced one is nearer');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), kinds => '{semantic}', candidates => 1, limit_n => 1, include_history => true)$$),
          ARRAY['old'], 'vector with include_history: the nearer one');

-- include_history: every fact, each with its validity --------------------------------------------
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', kinds => '{semantic}', include_history => true)$$),
          ARRAY['old', 'new'], 'include_history: the replaced fact too, best first');
SELECT results_eq(
    $$SELECT fact_key, valid_from, valid_to, ended_by, superseded_by FROM nexus.memory_search('walrus', kinds => '{semantic}', include_history => true)$$,
    $$VALUES ('zoo.animal', pg_temp.t(0), pg_temp.t(10), 'superseded', pg_temp.id('new')),
             ('zoo.animal', pg_temp.t(10), NULL::timestamptz, NULL, NULL::bigint)$$,
    'each fact hit has its key and validity');
SELECT results_eq(
    $$SELECT fact_key, valid_from, valid_to, ended_by, superseded_by FROM nexus.memory_search('walrus', kinds => '{episode}')$$,
    $$VALUES (NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::bigint)$$,
    'an episode hit has none');
SELECT is((SELECT ended_by FROM nexus.memory_search('tea', kinds => '{semantic}', include_history => true)),
          'invalidated', 'include_history: an invalidated fact, said so');

-- as_of, at every boundary ------------------------------------------------------------------------
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'walrus', '{semantic}', pg_temp.t(0) - interval '1 microsecond')),
          ARRAY[]::text[], 'as_of just before the history began: nothing');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'walrus', '{semantic}', pg_temp.t(0))),
          ARRAY['old'], 'as_of exactly valid_from: the fact holds');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'walrus', '{semantic}', pg_temp.t(10) - interval '1 microsecond')),
          ARRAY['old'], 'as_of just before the change: the old value');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'walrus', '{semantic}', pg_temp.t(10))),
          ARRAY['new'], 'as_of exactly valid_to: the old value no longer holds, the new one does');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(query_embedding => %L, kinds => %L, as_of => %L, limit_n => 1)', pg_temp.v(1), '{semantic}', pg_temp.t(5))),
          ARRAY['old'], 'as_of, vector branch: the value then');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'tea', '{semantic}', pg_temp.t(49))),
          ARRAY['tea'], 'as_of before an invalidation: the fact held');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'tea', '{semantic}', pg_temp.t(50))),
          ARRAY[]::text[], 'as_of exactly the invalidation: it no longer held');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'coffee', '{semantic}', now() + interval '2 years')),
          ARRAY['soon'], 'as_of in the future: a fact still to come holds then');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, kinds => %L, as_of => %L)', 'hotel', '{semantic}', now() + interval '2 days')),
          ARRAY[]::text[], 'as_of after a fact ends in the future: it no longer holds then');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('hotel', kinds => '{semantic}')$$),
          ARRAY['hotel'], 'but now it does');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, as_of => %L)', 'walrus', pg_temp.t(5))),
          ARRAY['old', 'said'], 'as_of leaves no episode out');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.text_candidates(%L, kinds => %L, as_of => %L)', 'walrus', '{semantic}', pg_temp.t(5))),
          ARRAY['old'], 'text_candidates as_of');

-- memory_similar ----------------------------------------------------------------------------------
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('semantic', pg_temp.id('new'), kinds => '{semantic}', limit_n => 2)$$),
          ARRAY['hotel'], 'memory_similar: facts that hold only');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_similar('semantic', pg_temp.id('new'), kinds => '{semantic}', limit_n => 1, include_history => true)$$),
          ARRAY['old'], 'memory_similar with include_history: the replaced fact too');
SELECT is((SELECT ended_by FROM nexus.memory_similar('semantic', pg_temp.id('new'), kinds => '{semantic}', limit_n => 1, include_history => true)),
          'superseded', 'memory_similar: each fact with its validity');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_similar(%L, %s, kinds => %L, limit_n => 1, as_of => %L)', 'semantic', pg_temp.id('hotel'), '{semantic}', pg_temp.t(5))),
          ARRAY['old'], 'memory_similar as_of');

-- errors ------------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM nexus.memory_search('walrus', as_of => now(), include_history => true)$$, 'NX031', NULL,
                 'memory_search: as_of and include_history exclude each other');
SELECT throws_ok($$SELECT * FROM nexus.text_candidates('walrus', as_of => now(), include_history => true)$$, 'NX031', NULL,
                 'text_candidates: as_of and include_history exclude each other');
SELECT throws_ok($$SELECT * FROM nexus.memory_similar('semantic', pg_temp.id('new'), as_of => now(), include_history => true)$$, 'NX031', NULL,
                 'memory_similar: as_of and include_history exclude each other');

-- memory_stats ------------------------------------------------------------------------------------
SELECT results_eq($$SELECT total, current, superseded, invalidated FROM nexus.memory_stats() WHERE kind = 'semantic'$$,
                  $$VALUES (5::bigint, 2::bigint, 1::bigint, 1::bigint)$$,
                  'memory_stats: facts that hold now, superseded, invalidated (one still to come is neither)');
SELECT is((SELECT current FROM nexus.memory_stats() WHERE kind = 'episode'), NULL, 'memory_stats: no fact counts for episodes');
RESET ROLE;

-- the postings of a fact are kept under the kind of its validity (migration 0022): s holds from now
-- on, h has ended, f has a bound in the future; "true now" reads s without a check and never h
SELECT results_eq($$SELECT n.name, array_agg(DISTINCT p.kind::text) FROM ids AS n
                     JOIN nexus_memory.text_postings AS p ON p.doc_id = n.id AND p.kind IN ('s', 'h', 'f')
                    WHERE n.kind = 's' GROUP BY n.name ORDER BY n.name$$,
                  $$VALUES ('bobs', '{s}'::text[]), ('hotel', '{f}'), ('new', '{s}'), ('old', '{h}'),
                           ('soon', '{f}'), ('tea', '{h}')$$,
                  'postings: a fact''s kind follows its validity (superseded, invalidated: h; a bound to come: f)');

-- a keyed fact is found by its key's words (migration 0025) ----------------------------------------
SET LOCAL ROLE carol;
INSERT INTO ids SELECT 'denver', nexus.remember_fact('I moved to Denver', key => 'user.home_city');
INSERT INTO ids SELECT 'plain', nexus.remember_fact('The office city is Boston');
RESET ROLE;
SET LOCAL ROLE carol;
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('which home?', kinds => '{semantic}')$$),
          ARRAY['denver'], 'text search finds a keyed fact by a word of its key its content lacks');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('city')$$), ARRAY['plain', 'denver'],
          'text_candidates: a key''s words count as the content''s, in its length too (the shorter first)');
RESET ROLE;
SELECT is((SELECT c.content FROM memory_system.claim_batch('pgtap-worker', 1000) AS c
            WHERE c.source_table = 'semantic_memories' AND c.source_id = pg_temp.id('denver')),
          'user.home_city: I moved to Denver', 'the worker embeds a keyed fact as its key, then its content');
SELECT is((SELECT c.content FROM memory_system.claim_batch('pgtap-worker', 1000) AS c
            WHERE c.source_id = pg_temp.id('plain')) IS NULL
          AND (SELECT q.state FROM memory_system.embeddings_queue AS q WHERE q.source_id = pg_temp.id('plain')) = 'processing',
          true, 'an unkeyed fact: claimed above with its content alone');
-- equal fused scores (one branch's first is the other's second): the closer in meaning first,
-- whichever is newer
SET LOCAL ROLE carol;
INSERT INTO ids SELECT 'tie_vec', nexus.remember_fact('an otter swims by the old stone bridge',
                                                      valid_from => now() - interval '1 day');
INSERT INTO ids SELECT 'tie_text', nexus.remember_fact('otter otter otter');
RESET ROLE;
INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
SELECT s.agent_id, s.id, memory_system._embedding_model(), s.content_sha256, v.vec
  FROM (VALUES ('tie_text', pg_temp.v(0.6, 0.8)), ('tie_vec', pg_temp.v(1))) AS v (name, vec)
  JOIN ids AS n ON n.name = v.name JOIN nexus_memory.semantic_memories AS s ON s.id = n.id;
SET LOCAL ROLE carol;
SELECT results_eq($$SELECT (SELECT name FROM ids WHERE id = m.id), text_rank, vector_rank
                      FROM nexus.memory_search('otter', pg_temp.v(1), kinds => '{semantic}', limit_n => 2) AS m$$,
                  $$VALUES ('tie_vec', 2, 1), ('tie_text', 1, 2)$$,
                  'a tie of the fused scores goes to the higher cosine, not to the newer fact');
RESET ROLE;

-- isolation ---------------------------------------------------------------------------------------
SET LOCAL ROLE bob;
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search('walrus', include_history => true)$$), ARRAY['bobs'],
          'bob, include_history: his own fact only');
SELECT is(pg_temp.found(format('SELECT kind, id FROM nexus.memory_search(%L, as_of => %L)', 'walrus', pg_temp.t(5))), ARRAY['bobs'],
          'bob, as_of: his own fact only');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.memory_search(query_embedding => pg_temp.v(1), include_history => true)$$), ARRAY['bobs'],
          'bob, vector with include_history: his own only');
SELECT is(pg_temp.found($$SELECT kind, id FROM nexus.text_candidates('walrus', include_history => true)$$), ARRAY['bobs'],
          'bob, text_candidates with include_history: his own only');
SELECT throws_ok($$SELECT * FROM nexus.memory_similar('semantic', pg_temp.id('old'), include_history => true)$$, 'NX033', NULL,
                 'bob: memory_similar of alice''s ended fact is not found');
SELECT results_eq($$SELECT total, current, superseded, invalidated FROM nexus.memory_stats() WHERE kind = 'semantic'$$,
                  $$VALUES (1::bigint, 1::bigint, 0::bigint, 0::bigint)$$, 'bob''s stats count his facts only');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
