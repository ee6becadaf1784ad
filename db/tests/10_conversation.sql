-- Conversation memory in nexus.memory_search: the best hits lend part of their score to the
-- episodes recorded next to them in their session (neighbour_weight), context => N returns those
-- neighbours with each row, results carry valid_at and recency counts from it. Neighbours never
-- cross sessions or agents.
BEGIN;
SELECT plan(28);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('conv');
SELECT tests.create_agent('other');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- the names of the rows a query returns, in its order
CREATE FUNCTION pg_temp.found(p_sql text) RETURNS text[] LANGUAGE plpgsql
AS $$
DECLARE
    v_out text[];
BEGIN
    EXECUTE format($q$SELECT coalesce(array_agg(coalesce(n.name, q.id::text) ORDER BY q.ord), '{}')
                        FROM (SELECT r.id, row_number() OVER () AS ord FROM (%s) AS r) AS q
                        LEFT JOIN ids AS n ON n.id = q.id$q$, p_sql) INTO v_out;
    RETURN v_out;
END
$$;
CREATE FUNCTION pg_temp.v(VARIADIC p float8[]) RETURNS public.vector LANGUAGE sql IMMUTABLE
AS $$ SELECT (p || array_fill(0::float8, ARRAY[384 - cardinality(p)]))::float4[]::public.vector $$;
-- a vector of the current model for an episode's current content, as the worker would write it
CREATE FUNCTION pg_temp.embed(p_name text, p_vec public.vector) RETURNS void LANGUAGE sql
AS $$
    INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
    SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256, p_vec
      FROM nexus_memory.zep_episodic_memory AS e WHERE e.id = pg_temp.id(p_name);
$$;

-- A conversation of conv in session s1 (e1, e2, e3, then n1, which has no vector), recorded with
-- an episode of another agent in a session of the same name (o1) and conv's own episodes of other
-- sessions (x, y) in between: next to each other by id, but not neighbours.
SET LOCAL ROLE conv;
INSERT INTO ids VALUES ('e1', nexus.record_episode('Joanna: what colour did you dye your hair?', session => 's1'));
RESET ROLE;
SET LOCAL ROLE other;
INSERT INTO ids VALUES ('o1', nexus.record_episode('Other: a turn of somebody else', session => 's1'));
RESET ROLE;
SET LOCAL ROLE conv;
INSERT INTO ids VALUES ('x', nexus.record_episode('Nate: the tournament is next week', session => 's2'));
INSERT INTO ids VALUES ('e2', nexus.record_episode('Nate: purple! I love it', session => 's1'));
INSERT INTO ids VALUES ('y', nexus.record_episode('Joanna: my script got rejected', session => 's3'));
INSERT INTO ids VALUES ('e3', nexus.record_episode('Joanna: it suits you', session => 's1'));
INSERT INTO ids VALUES ('n1', nexus.record_episode('Nate: thanks, see you', session => 's1'));
INSERT INTO ids VALUES ('nosession', nexus.record_episode('Nate: a note to self'));
RESET ROLE;
-- vector ranks for the query v(1): e1 1, x 2, y 3, e2 4, e3 5, nosession 6 (n1 has no vector);
-- o1 is other's
SELECT pg_temp.embed('e1', pg_temp.v(1));
SELECT pg_temp.embed('x', pg_temp.v(0.6, 0.8));
SELECT pg_temp.embed('y', pg_temp.v(0.5, 0, 0.866));
SELECT pg_temp.embed('e2', pg_temp.v(0.1, 0.995));
SELECT pg_temp.embed('e3', pg_temp.v(0.05, 0, 0, 0.9987));
SELECT pg_temp.embed('nosession', pg_temp.v(0, 0, 0, 0, 1));
SELECT pg_temp.embed('o1', pg_temp.v(1));

SET LOCAL ROLE conv;

-- 1. neighbours share their scores ==================================================================
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1), neighbour_weight => 0)$$),
          ARRAY['e1', 'x', 'y', 'e2', 'e3', 'nosession'], 'neighbour_weight 0: the branch''s order');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1))$$),
          ARRAY['e1', 'e2', 'e3', 'x', 'y', 'nosession'],
          'by default e2 and e3, recorded after the best hit e1 in its session, rise above x and y');
-- (issue 25: a neighbour never outranks the hit that lent to it) 1/10 + 0.4 / 9 + 0.2 / 6 would
-- take e3 above e1: it stops at 0.99 of e1's score
SELECT ok((SELECT abs(fused_score - 0.99 / 6) < 1e-12
             FROM nexus.memory_search(query_embedding => pg_temp.v(1)) WHERE id = pg_temp.id('e3')),
          'e3 (rank 5) gains 0.4 x the score of e2 (rank 4, distance 1) and 0.2 x that of e1 (rank 1, distance 2), up to 0.99 x e1''s');
SELECT ok((SELECT abs(fused_score - 1.0 / 7) < 1e-12
             FROM nexus.memory_search(query_embedding => pg_temp.v(1)) WHERE id = pg_temp.id('x')),
          'x, next to e1 and e2 by id but of another session, gains nothing');
SELECT ok((SELECT abs(fused_score - 1.0 / 8) < 1e-12
             FROM nexus.memory_search(query_embedding => pg_temp.v(1)) WHERE id = pg_temp.id('y')),
          'y, alone in its session, gains nothing');
SELECT ok((SELECT abs(fused_score - (1.0 / 6 + 0.4 / 9 + 0.2 / 10)) < 1e-12
             FROM nexus.memory_search(query_embedding => pg_temp.v(1), neighbour_weight => 0.4) WHERE id = pg_temp.id('e1')),
          'e1 gains from e2 and e3 after it; nothing from o1 (another agent''s, in a session of the same name)');
SELECT ok((SELECT abs(fused_score - (1.0 / 6 + 1.0 * (1.0 / 9) + 0.5 * (1.0 / 10))) < 1e-12
             FROM nexus.memory_search(query_embedding => pg_temp.v(1), neighbour_weight => 1) WHERE id = pg_temp.id('e1')),
          'neighbour_weight scales the shares (1: e1, above the hits that lend to it, gains all of e2''s score and half of e3''s)');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1), limit_n => 20)$$),
          ARRAY['e1', 'e2', 'e3', 'x', 'y', 'nosession'],
          'only rows a branch found are returned: n1, a neighbour without a vector, is not added');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search('colour dye hair purple suits', neighbour_weight => 0)$$),
          ARRAY['e1', 'e3', 'e2'], 'text only, neighbour_weight 0: e1 (three words), e3 (one, shorter), e2 (one)');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search('colour dye hair purple suits')$$),
          ARRAY['e1', 'e2', 'e3'],
          'text only, by default: e2 (rank 3), between e1 and e3, gains from both but stays below e1, the best hit that lent to it (issue 25: the reply follows the statement that earned it)');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1), session => 's1')$$),
          ARRAY['e1', 'e2', 'e3'],
          'with a session filter, the session''s rows only; e2 (rank 2), between e1 and e3, gains most but stays below e1, which lent to it');
RESET ROLE;
SET LOCAL ROLE other;
SELECT ok((SELECT abs(fused_score - 1.0 / 6) < 1e-12 FROM nexus.memory_search(query_embedding => pg_temp.v(1))),
          'other: its o1 gains nothing from conv''s e1, e2, e3 of a session of the same name');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search(query_embedding => pg_temp.v(1))$$),
          ARRAY['o1'], 'other finds only its own episode');
RESET ROLE;
SET LOCAL ROLE conv;

-- 2. context => N ==================================================================================
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), limit_n => 1, context => 1)),
          jsonb_build_array(jsonb_build_object('id', pg_temp.id('e2'), 'offset', 1, 'content', 'Nate: purple! I love it')),
          'context 1: e1''s neighbours, the next episode of its session (none before it; o1 and x are not of it)');
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 2) WHERE id = pg_temp.id('e2')),
          jsonb_build_array(jsonb_build_object('id', pg_temp.id('e1'), 'offset', -1, 'content', 'Joanna: what colour did you dye your hair?'),
                            jsonb_build_object('id', pg_temp.id('e3'), 'offset', 1, 'content', 'Joanna: it suits you'),
                            jsonb_build_object('id', pg_temp.id('n1'), 'offset', 2, 'content', 'Nate: thanks, see you')),
          'context 2: up to two before and two after, in order (n1 too: neighbours need no vector)');
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 2) WHERE id = pg_temp.id('x')),
          NULL::jsonb, 'x, alone in its session, has no neighbours');
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 2) WHERE id = pg_temp.id('nosession')),
          NULL::jsonb, 'an episode without a session has no neighbours');
SELECT ok((SELECT bool_and(neighbours IS NULL) FROM nexus.memory_search(query_embedding => pg_temp.v(1))),
          'context 0 (the default): no neighbours');
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 2, tags_all => '{}') WHERE id = pg_temp.id('e1')),
          (SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 2) WHERE id = pg_temp.id('e1')),
          'filters do not apply to the neighbours');
RESET ROLE;
SET LOCAL ROLE other;
SELECT is((SELECT neighbours FROM nexus.memory_search(query_embedding => pg_temp.v(1), context => 5)),
          NULL::jsonb, 'other: its o1 has no neighbours, though conv''s episodes of a session s1 surround it by id');
SELECT is(nexus._session_context(pg_temp.id('e2'), 's1', 5, 'conv'), NULL::jsonb,
          'other asking for the context of conv''s e2 in conv''s s1 gets none of conv''s episodes');
RESET ROLE;
SET LOCAL ROLE conv;
SELECT throws_ok($$SELECT * FROM nexus.memory_search('hair', context => 21)$$, 'NX031', NULL, 'context over 20');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('hair', context => -1)$$, 'NX031', NULL, 'negative context');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('hair', neighbour_weight => -0.1)$$, 'NX031', NULL, 'negative neighbour_weight');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('hair', neighbour_weight => 'NaN')$$, 'NX031', NULL, 'NaN neighbour_weight');

-- 3. valid_at ======================================================================================
-- two identical texts: r_old recorded now about a year ago, r_new recorded 30 days ago about then
INSERT INTO ids VALUES ('r_old', nexus.record_episode('harbour storm report', valid_at => now() - interval '365 days'));
INSERT INTO nexus_memory.zep_episodic_memory (content, created_at) VALUES ('harbour storm report', now() - interval '30 days');
INSERT INTO ids SELECT 'r_new', max(id) FROM nexus_memory.zep_episodic_memory WHERE content = 'harbour storm report';
SELECT is((SELECT valid_at FROM nexus.memory_search('harbour storm') WHERE id = pg_temp.id('r_old')),
          now() - interval '365 days', 'results carry valid_at');
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search('harbour storm')$$), ARRAY['r_old', 'r_new'],
          'without recency, equal scores in id order');
-- text ranks 1 (r_old) and 2 (r_new): 1/6 and 1/7; half-life a year: r_old gains 1/6 x 0.5 (by
-- valid_at; 1/6 by created_at, which would keep it first), r_new 1/6 x 0.5^(30/365)
SELECT is(pg_temp.found($$SELECT id FROM nexus.memory_search('harbour storm', recency_weight => 1,
                                                              recency_half_life => '365 days')$$),
          ARRAY['r_new', 'r_old'],
          'recency counts the age of valid_at when given: r_old, recorded now about a year ago, ranks below r_new');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
