-- Ranking rules of nexus.memory_search for knowledge that changes (issue 25): a neighbour lifted by a
-- hit never outranks that hit, and of two episodes on the same topic that score alike the newer
-- ranks first. Vectors are set by hand (the query is the first axis), the search is vector only.
BEGIN;
SELECT plan(8);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');
SELECT tests.create_agent('carol');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
GRANT ALL ON ids TO PUBLIC;
-- a vector of the configured dimension from its first components (the rest 0)
CREATE FUNCTION pg_temp.v(VARIADIC p float8[]) RETURNS public.vector LANGUAGE sql IMMUTABLE
AS $$ SELECT (p || array_fill(0::float8, ARRAY[384 - cardinality(p)]))::float4[]::public.vector $$;
-- records an episode of the current agent in a session under a name, and the vector it will get;
-- each one later than the one before (one transaction: now() would give them all the same time,
-- and of episodes of the same time none is newer)
CREATE TEMP TABLE vecs (name text PRIMARY KEY, vec public.vector);
GRANT ALL ON vecs TO PUBLIC;
CREATE FUNCTION pg_temp.said(p_name text, p_session text, p_vec public.vector) RETURNS void LANGUAGE sql
AS $$
    INSERT INTO ids VALUES (p_name, nexus.record_episode(p_name, session => p_session, valid_at => clock_timestamp()));
    INSERT INTO vecs VALUES (p_name, p_vec);
$$;
-- stores those vectors, as the worker would (run as the superuser)
CREATE FUNCTION pg_temp.embed() RETURNS void LANGUAGE sql
AS $$
    INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
    SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256, v.vec
      FROM vecs AS v JOIN ids AS n ON n.name = v.name
      JOIN nexus_memory.zep_episodic_memory AS e ON e.id = n.id;
    TRUNCATE vecs;
$$;
-- the names of the episodes a vector-only search returns, in its order
CREATE FUNCTION pg_temp.ranked(p_query public.vector, p_neighbour_weight float8 DEFAULT 0.4) RETURNS text[]
LANGUAGE sql
AS $$
    SELECT array_agg(n.name ORDER BY r.ord)
      FROM (SELECT s.id, row_number() OVER () AS ord
              FROM nexus.memory_search(query_embedding => p_query, kinds => '{episode}',
                                       neighbour_weight => p_neighbour_weight) AS s) AS r
      JOIN ids AS n ON n.id = r.id
$$;
GRANT EXECUTE ON FUNCTION pg_temp.v(VARIADIC float8[]), pg_temp.said(text, text, public.vector),
                          pg_temp.ranked(public.vector, float8) TO PUBLIC;

-- alice: a statement, the reply after it, and a weaker hit after that, on unrelated topics (cosines
-- under 0.3). The reply is lent 0.4 of the statement's score and 0.4 of the third's: before issue
-- 25 it rose above the statement that earned it
SET LOCAL ROLE alice;
SELECT pg_temp.said('I just moved to Austin', 's1', pg_temp.v(1, 0, 0));
SELECT pg_temp.said('The weather is perfect there', 's1', pg_temp.v(0.3, 0.954, 0));
SELECT pg_temp.said('We went to a barbecue', 's1', pg_temp.v(0.2, 0, 0.98));
RESET ROLE;
SELECT pg_temp.embed();
SET LOCAL ROLE alice;
SELECT is((pg_temp.ranked(pg_temp.v(1, 0, 0)))[1], 'I just moved to Austin',
          'the statement ranks above the reply its neighbour credit lifts');
SELECT cmp_ok((SELECT max(fused_score) FILTER (WHERE id = (SELECT id FROM ids WHERE name = 'The weather is perfect there'))
                 FROM nexus.memory_search(query_embedding => pg_temp.v(1, 0, 0), kinds => '{episode}')),
              '<',
              (SELECT max(fused_score) FILTER (WHERE id = (SELECT id FROM ids WHERE name = 'I just moved to Austin'))
                 FROM nexus.memory_search(query_embedding => pg_temp.v(1, 0, 0), kinds => '{episode}')),
              'the reply''s score stays below the score of the hit that lent to it');
SELECT is(pg_temp.ranked(pg_temp.v(1, 0, 0), 0),
          ARRAY['I just moved to Austin', 'The weather is perfect there', 'We went to a barbecue'],
          'without neighbour credit: by cosine');
SELECT ok((SELECT fused_score FROM nexus.memory_search(query_embedding => pg_temp.v(1, 0, 0), kinds => '{episode}')
            WHERE id = (SELECT id FROM ids WHERE name = 'The weather is perfect there'))
          > (SELECT fused_score FROM nexus.memory_search(query_embedding => pg_temp.v(1, 0, 0), kinds => '{episode}',
                                                         neighbour_weight => 0)
              WHERE id = (SELECT id FROM ids WHERE name = 'The weather is perfect there')),
          'the reply still gains from its neighbours');
RESET ROLE;

-- bob: a phone number, then the new phone number, then something else in another session. The old
-- one is nearer the question (cosine 0.9 against 0.8) and the two are on the same topic (cosine
-- 0.72): the newer first
SET LOCAL ROLE bob;
SELECT pg_temp.said('My phone number is 555-0101', 's1', pg_temp.v(0.9, 0.436, 0));
SELECT pg_temp.said('My new phone number is 555-0202', 's1', pg_temp.v(0.8, 0, 0.6));
SELECT pg_temp.said('Remind me about the dentist', 's2', pg_temp.v(0, 0, 0, 1));
RESET ROLE;
SELECT pg_temp.embed();
SET LOCAL ROLE bob;
SELECT is(pg_temp.ranked(pg_temp.v(1, 0, 0)),
          ARRAY['My new phone number is 555-0202', 'My phone number is 555-0101', 'Remind me about the dentist'],
          'of two episodes on the same topic that score alike, the newer ranks first');
SELECT is(pg_temp.ranked(pg_temp.v(1, 0, 0), 0),
          ARRAY['My new phone number is 555-0202', 'My phone number is 555-0101', 'Remind me about the dentist'],
          'the same without neighbour credit');
RESET ROLE;

-- carol: scores alike, but the later episode is on another topic (cosine 0.32 with the first):
-- the order stays the query's
SET LOCAL ROLE carol;
SELECT pg_temp.said('My phone number is 555-0303', 's1', pg_temp.v(0.9, 0.436, 0));
SELECT pg_temp.said('I like jazz', 's1', pg_temp.v(0.7, -0.714, 0));
RESET ROLE;
SELECT pg_temp.embed();
SET LOCAL ROLE carol;
SELECT is(pg_temp.ranked(pg_temp.v(1, 0, 0), 0), ARRAY['My phone number is 555-0303', 'I like jazz'],
          'a later episode on another topic does not move up');
-- and a later one on the same topic that the query ranks below the first five (cosine 0.3, under
-- four others at 0.4, each on a topic of its own) neither: only the first five are reordered
SELECT pg_temp.said('Filler ' || n, 's3',
                    pg_temp.v(VARIADIC ARRAY[0.4]::float8[] || array_fill(0::float8, ARRAY[n + 1]) || ARRAY[0.917]::float8[]))
  FROM generate_series(1, 4) AS n;
SELECT pg_temp.said('Phone bills are due monthly', 's2', pg_temp.v(0.3, 0.9, 0.3));
RESET ROLE;
SELECT pg_temp.embed();
SET LOCAL ROLE carol;
SELECT is(pg_temp.ranked(pg_temp.v(1, 0, 0), 0),
          ARRAY['My phone number is 555-0303', 'I like jazz', 'Filler 1', 'Filler 2', 'Filler 3', 'Filler 4',
                'Phone bills are due monthly'],
          'a later episode on the same topic ranked below the first five does not move up');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
