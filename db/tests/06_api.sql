-- The agent API of episodes, facts, working memory, checkpoints, consensus and stats (schema nexus):
-- values round trip, the side effects (queue, expiry, versions), bad input with its SQLSTATE, and
-- isolation: another agent's ids and keys behave like ids and keys that do not exist.
BEGIN;
SELECT plan(182);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');
SELECT tests.create_agent('carol');

-- ids and values carried between roles
CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint, at timestamptz);
CREATE TEMP TABLE pages (page int, pos int, id bigint, created_at timestamptz);
GRANT ALL ON ids, pages TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- the SQLSTATE and DETAIL a statement raises (NULL if it raises nothing)
CREATE FUNCTION pg_temp.error_of(p_sql text) RETURNS text LANGUAGE plpgsql
AS $$
DECLARE
    v_state text;
    v_detail text;
BEGIN
    EXECUTE p_sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ': ' || v_detail;
END
$$;
CREATE TEMP VIEW queue AS SELECT * FROM memory_system.embeddings_queue;

-- not an agent ----------------------------------------------------------------------------------
-- (the session user here is a superuser, which is no agent)
SELECT throws_ok(s, 'NX001', NULL, format('a role that is no agent: %s', s))
  FROM unnest(ARRAY[
      $$SELECT nexus.record_episode('x')$$,
      $$SELECT nexus.remember_fact('x')$$,
      $$SELECT nexus.working_memory_set('k', '1')$$,
      $$SELECT nexus.save_checkpoint('{}')$$,
      $$SELECT nexus.consensus_cas('k', 0, '1')$$]) AS s;
SET LOCAL ROLE nexus_ro;
SELECT throws_ok($$SELECT nexus.get_episode(1)$$, '42501', NULL, 'analysts may not call the agent API');
RESET ROLE;
SET LOCAL ROLE nexus_app;
SELECT throws_ok($$SELECT nexus.record_episode('x')$$, '42501', NULL,
                 'the orchestrator may not call the agent API without SET ROLE to an agent');
RESET ROLE;

-- episodes: record, get ---------------------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO ids (name, id) VALUES
    ('e1', nexus.record_episode('Alice met the walrus at the harbour', action_type => 'message',
                                metadata => '{"channel": "chat", "n": 1}', tags => '{sea,meeting}',
                                importance => 0.9, session => 's1', source => 'json',
                                valid_at => '2024-05-01 12:00+00')),
    ('e2', nexus.record_episode('plain episode'));
SELECT results_eq(
    $$SELECT content, action_type, metadata, tags, importance, session_id, source, valid_at, embedded
        FROM nexus.get_episode(pg_temp.id('e1'))$$,
    $$VALUES ('Alice met the walrus at the harbour', 'message', '{"channel": "chat", "n": 1}'::jsonb,
              '{sea,meeting}'::text[], 0.9::real, 's1', 'json', '2024-05-01 12:00+00'::timestamptz, false)$$,
    'record_episode then get_episode: every field round trips; not embedded yet');
SELECT results_eq(
    $$SELECT action_type, metadata, tags, importance, session_id, source, valid_at, episode_uuid IS NOT NULL,
             created_at = now(), updated_at = now()
        FROM nexus.get_episode(pg_temp.id('e2'))$$,
    $$VALUES ('observation', '{}'::jsonb, '{}'::text[], 0.5::real, NULL::text, 'text', NULL::timestamptz, true,
              true, true)$$,
    'record_episode defaults: observation, no metadata, no tags, importance 0.5, no session, source text');
INSERT INTO ids (name, id) VALUES ('e_nulls', nexus.record_episode('nulls', metadata => NULL, tags => NULL, source => NULL));
SELECT is((SELECT metadata::text || tags::text || source FROM nexus.get_episode(pg_temp.id('e_nulls'))),
          '{}{}text', 'NULL metadata, tags and source mean the defaults');
SELECT is((SELECT id FROM nexus.get_episode(pg_temp.id('e1'))), pg_temp.id('e1'), 'get_episode returns the id asked for');
SELECT throws_ok($$SELECT * FROM nexus.get_episode(-1)$$, 'NX033', NULL, 'get_episode of an id that does not exist');
SELECT throws_ok($$SELECT * FROM nexus.get_episode(NULL)$$, 'NX033', NULL, 'get_episode of NULL');

-- record_episode: bad input
SELECT throws_ok($$SELECT nexus.record_episode(NULL)$$, 'NX031', NULL, 'record_episode without content');
SELECT throws_ok(format('SELECT nexus.record_episode(%L, action_type => %L)', 'x', a), 'NX031', NULL,
                 format('record_episode with action_type %s', coalesce(quote_literal(left(a, 10)), 'NULL')))
  FROM unnest(ARRAY['', '   ', repeat('a', 65), NULL]) AS a;
SELECT lives_ok(format('SELECT nexus.record_episode(%L, action_type => %L)', 'x', repeat('a', 64)),
                'record_episode with an action_type of 64 characters');
SELECT throws_ok($$SELECT nexus.record_episode(repeat('x', 262145))$$, 'NX011', NULL, 'record_episode over 256 KiB');
SELECT throws_ok($$SELECT nexus.record_episode('x', metadata => jsonb_build_object('k', repeat('x', 65536)))$$,
                 'NX011', NULL, 'record_episode with metadata over 64 KiB');
SELECT throws_ok($$SELECT nexus.record_episode('x', metadata => '[1]')$$, 'NX012', NULL,
                 'record_episode with metadata that is not an object');
SELECT throws_ok(format('SELECT nexus.record_episode(%L, importance => %s)', 'x', i), 'NX015', NULL,
                 format('record_episode with importance %s', i))
  FROM unnest(ARRAY['1.01', '-0.5', 'NULL']) AS i;
SELECT throws_ok(format('SELECT nexus.record_episode(%L, tags => %L)', 'x', t), 'NX015', NULL,
                 format('record_episode with tags %s', left(t, 20)))
  FROM unnest(ARRAY['{ok,NULL}', '{""}', array_fill('t'::text, ARRAY[65])::text]) AS t;
RESET ROLE;

-- episodes: update (and its re-embedding) ---------------------------------------------------------
-- the first content is embedded: its queue item is done and its vector exists
UPDATE memory_system.embeddings_queue SET state = 'done', processed_at = now()
 WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('e1');
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT agent_id, id, memory_system._embedding_model(), content_sha256, tests.fake_vector(1)
  FROM nexus_memory.zep_episodic_memory WHERE id = pg_temp.id('e1');
SET LOCAL ROLE alice;
SELECT ok((SELECT embedded FROM nexus.get_episode(pg_temp.id('e1'))), 'get_episode: embedded once its content has a vector');
SELECT is(nexus.update_episode(pg_temp.id('e1'), tags => '{sea}', importance => 0.2),
          (SELECT updated_at FROM nexus.get_episode(pg_temp.id('e1'))), 'update_episode returns updated_at');
SELECT results_eq(
    $$SELECT content, action_type, metadata, tags, importance, session_id, embedded FROM nexus.get_episode(pg_temp.id('e1'))$$,
    $$VALUES ('Alice met the walrus at the harbour', 'message', '{"channel": "chat", "n": 1}'::jsonb, '{sea}'::text[],
              0.2::real, 's1', true)$$,
    'update_episode changes the given fields only (NULL leaves a field as it is)');
RESET ROLE;
SELECT is((SELECT count(*) FROM queue WHERE source_id = pg_temp.id('e1') AND state = 'pending'), 0::bigint,
          'an update that keeps the content enqueues nothing');
SET LOCAL ROLE alice;
SELECT lives_ok($$SELECT nexus.update_episode(pg_temp.id('e1'), content => 'Alice met the walrus at the pier',
                                              metadata => '{"channel": "voice"}', action_type => 'action',
                                              session => 's2')$$,
                'update_episode with new content');
SELECT results_eq(
    $$SELECT content, action_type, metadata, session_id, embedded FROM nexus.get_episode(pg_temp.id('e1'))$$,
    $$VALUES ('Alice met the walrus at the pier', 'action', '{"channel": "voice"}'::jsonb, 's2', false)$$,
    'the new content, metadata, action and session are stored; the old vector does not count for the new content');
RESET ROLE;
SELECT results_eq(
    $$SELECT agent_id, content_sha256, model FROM queue
       WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('e1') AND state = 'pending'$$,
    $$VALUES ('alice', sha256('Alice met the walrus at the pier'::bytea), memory_system._embedding_model())$$,
    'update_episode with new content enqueues one new pending item for the new content');
SET LOCAL ROLE alice;
SELECT lives_ok($$SELECT nexus.update_episode(pg_temp.id('e1'), content => 'Alice met the walrus at the quay')$$,
                'update_episode with newer content still');
RESET ROLE;
SELECT results_eq(
    $$SELECT count(*), min(content_sha256) FROM queue
       WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('e1') AND state = 'pending'$$,
    $$VALUES (1::bigint, sha256('Alice met the walrus at the quay'::bytea))$$,
    'a second content change supersedes the pending item in place (one item, the newest checksum)');
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT nexus.update_episode(-1, content => 'x')$$, 'NX033', NULL, 'update_episode of an id that does not exist');
SELECT throws_ok(format('SELECT nexus.update_episode(%s, action_type => %L)', pg_temp.id('e2'), a), 'NX031', NULL,
                 format('update_episode with action_type %s', quote_literal(left(a, 10))))
  FROM unnest(ARRAY['', '  ', repeat('a', 65)]) AS a;
SELECT throws_ok(format('SELECT nexus.update_episode(%s, importance => 2)', pg_temp.id('e2')), 'NX015', NULL,
                 'update_episode with importance 2');
SELECT throws_ok(format($$SELECT nexus.update_episode(%s, metadata => '"s"')$$, pg_temp.id('e2')), 'NX012', NULL,
                 'update_episode with metadata that is not an object');
SELECT throws_ok(format($$SELECT nexus.update_episode(%s, content => repeat('x', 262145))$$, pg_temp.id('e2')),
                 'NX011', NULL, 'update_episode with content over 256 KiB');
SELECT throws_ok(format($$SELECT nexus.update_episode(%s, tags => '{""}')$$, pg_temp.id('e2')), 'NX015', NULL,
                 'update_episode with an empty tag');
SELECT is((SELECT content || ':' || importance FROM nexus.get_episode(pg_temp.id('e2'))), 'plain episode:0.5',
          'failed updates changed nothing');

-- episodes: delete --------------------------------------------------------------------------------
INSERT INTO ids (name, id) VALUES ('e_del', nexus.record_episode('doomed episode about lighthouses'));
INSERT INTO ids (name, id) VALUES ('f_src', nexus.remember_fact('lighthouses guide ships', source_episode_id => pg_temp.id('e_del')));
RESET ROLE;
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT agent_id, id, memory_system._embedding_model(), content_sha256, tests.fake_vector(2)
  FROM nexus_memory.zep_episodic_memory WHERE id = pg_temp.id('e_del');
SET LOCAL ROLE alice;
SELECT is(nexus.delete_episode(pg_temp.id('e_del')), true, 'delete_episode of an existing episode: true');
SELECT is(nexus.delete_episode(pg_temp.id('e_del')), false, 'delete_episode again: false');
SELECT is(nexus.delete_episode(NULL), false, 'delete_episode of NULL: false');
SELECT throws_ok(format('SELECT * FROM nexus.get_episode(%s)', pg_temp.id('e_del')), 'NX033', NULL,
                 'a deleted episode is not found');
SELECT is((SELECT source_episode_id FROM nexus.get_fact(pg_temp.id('f_src'))), NULL::bigint,
          'a fact drawn from a deleted episode stays, without its source');
RESET ROLE;
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM nexus_memory.episode_embeddings WHERE episode_id = pg_temp.id('e_del')),
             (SELECT count(*) FROM nexus_memory.text_postings WHERE kind = 'e' AND doc_id = pg_temp.id('e_del')),
             (SELECT count(*) FROM queue WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('e_del'))$$,
    $$VALUES (0::bigint, 0::bigint, 0::bigint)$$,
    'delete_episode takes the vector, the postings and the queue items with it');

-- episodes: recent_episodes -------------------------------------------------------------------------
-- 25 episodes of session pg, in 10 distinct instants (ties on created_at are broken by id)
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content, session_id, created_at, tags)
SELECT 'paged ' || g, 'pg', timestamptz '2024-01-01 00:00+00' + (g % 10) * interval '1 hour',
       CASE WHEN g % 3 = 0 THEN '{a,b}'::text[] WHEN g % 3 = 1 THEN '{a}' ELSE '{}' END
  FROM generate_series(1, 25) AS g;
DO $$
DECLARE
    v_page int := 0;
    v_last_at timestamptz;
    v_last_id bigint;
    v_n int;
BEGIN
    LOOP
        v_page := v_page + 1;
        INSERT INTO pages
        SELECT v_page, row_number() OVER (), r.id, r.created_at
          FROM nexus.recent_episodes(7, session => 'pg', before_created_at => v_last_at,
                                     before_id => v_last_id) AS r;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        EXIT WHEN v_n = 0 OR v_page > 10;
        SELECT p.created_at, p.id INTO v_last_at, v_last_id FROM pages AS p WHERE p.page = v_page ORDER BY p.pos DESC LIMIT 1;
    END LOOP;
END
$$;
SELECT results_eq(
    $$SELECT id FROM pages ORDER BY page, pos$$,
    $$SELECT id FROM nexus_memory.zep_episodic_memory WHERE session_id = 'pg' ORDER BY created_at DESC, id DESC$$,
    'recent_episodes pages of 7 by (before_created_at, before_id) return every row once, newest first, across ties');
SELECT is((SELECT array_agg(n ORDER BY page) FROM (SELECT page, count(*) AS n FROM pages GROUP BY page) AS p),
          ARRAY[7, 7, 7, 4]::bigint[], 'four pages of 7, 7, 7 and 4 rows, then an empty one');
SELECT is((SELECT count(*) FROM nexus.recent_episodes()), 20::bigint, 'recent_episodes returns 20 rows by default');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(1000, session => 'pg')), 25::bigint,
          'session keeps that session''s episodes only');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(1000, session => 'none such')), 0::bigint,
          'an unknown session has no episodes');
SELECT is((SELECT array_agg(DISTINCT created_at ORDER BY created_at)
             FROM nexus.recent_episodes(1000, since => '2024-01-01 03:00+00', until => '2024-01-01 05:00+00')),
          ARRAY['2024-01-01 03:00+00', '2024-01-01 04:00+00']::timestamptz[],
          'since is inclusive and until exclusive');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(1000, since => '2024-01-01 03:00+00', until => '2024-01-01 05:00+00')),
          (SELECT count(*) FROM nexus_memory.zep_episodic_memory
            WHERE created_at >= '2024-01-01 03:00+00' AND created_at < '2024-01-01 05:00+00'),
          'the time range returns every episode inside it');
SELECT is(ARRAY(SELECT id FROM nexus.recent_episodes(1000, tags_all => '{a,b}') ORDER BY id),
          ARRAY(SELECT id FROM nexus_memory.zep_episodic_memory WHERE tags @> '{a,b}' ORDER BY id),
          'tags_all keeps the episodes carrying all the tags');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(1000, tags_all => '{a,b}')), 8::bigint, 'eight carry a and b');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(1000, session => 'pg', tags_all => '{a}',
                                                      since => '2024-01-01 05:00+00')),
          (SELECT count(*) FROM nexus_memory.zep_episodic_memory
            WHERE session_id = 'pg' AND tags @> '{a}' AND created_at >= '2024-01-01 05:00+00'),
          'filters combine');
SELECT throws_ok(format('SELECT * FROM nexus.recent_episodes(%s)', l), 'NX031', NULL, format('recent_episodes limit %s', l))
  FROM unnest(ARRAY['0', '1001', 'NULL', '-1']) AS l;
SELECT throws_ok($$SELECT * FROM nexus.recent_episodes(before_created_at => now())$$, 'NX031', NULL,
                 'recent_episodes with before_created_at but no before_id');
SELECT throws_ok($$SELECT * FROM nexus.recent_episodes(before_id => 1)$$, 'NX031', NULL,
                 'recent_episodes with before_id but no before_created_at');

-- facts ----------------------------------------------------------------------------------------------
INSERT INTO ids (name, id) VALUES
    ('f1', nexus.remember_fact('The walrus lives in the Arctic', metadata => '{"src": "book", "page": 1}',
                               tags => '{zoo,arctic}', importance => 0.7, source_episode_id => pg_temp.id('e1')));
SELECT results_eq(
    $$SELECT content, metadata, tags, importance, source_episode_id, embedded, created_at = now()
        FROM nexus.get_fact(pg_temp.id('f1'))$$,
    $$VALUES ('The walrus lives in the Arctic', '{"src": "book", "page": 1}'::jsonb, '{zoo,arctic}'::text[], 0.7::real,
              pg_temp.id('e1'), false, true)$$,
    'remember_fact then get_fact: every field round trips');
SELECT is(nexus.remember_fact('The walrus lives in the Arctic', metadata => '{"page": 2, "by": "bob"}',
                              tags => '{arctic,cold}', importance => 0.3),
          pg_temp.id('f1'), 'the same fact again returns the same id');
SELECT results_eq(
    $$SELECT metadata, tags, importance, source_episode_id FROM nexus.get_fact(pg_temp.id('f1'))$$,
    $$VALUES ('{"src": "book", "page": 2, "by": "bob"}'::jsonb, '{arctic,cold,zoo}'::text[], 0.7::real, pg_temp.id('e1'))$$,
    'dedup merges metadata (new keys win), unites tags, keeps the higher importance and the known source');
SELECT is(nexus.remember_fact('The walrus lives in the Arctic', importance => 0.95), pg_temp.id('f1'), 'and once more');
SELECT is((SELECT importance FROM nexus.get_fact(pg_temp.id('f1'))), 0.95::real, 'a higher importance wins');
SELECT isnt(nexus.remember_fact('The walrus lives in the Antarctic'), pg_temp.id('f1'),
            'content that differs in a word is another fact (case, spaces, punctuation: 14_facts.sql)');
RESET ROLE;
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM nexus_memory.semantic_memories WHERE content = 'The walrus lives in the Arctic'),
             (SELECT count(*) FROM queue WHERE source_table = 'semantic_memories' AND source_id = pg_temp.id('f1')),
             (SELECT count(*) FROM nexus_memory.text_postings WHERE kind = 's' AND doc_id = pg_temp.id('f1')),
             (SELECT count(*) FROM unnest((SELECT content_tsv FROM nexus_memory.semantic_memories WHERE id = pg_temp.id('f1'))))$$,
    $$VALUES (1::bigint, 1::bigint, 3::bigint, 3::bigint)$$,
    'a deduplicated fact is one row, one queue item, its postings once');
SET LOCAL ROLE alice;
SELECT throws_ok(format('SELECT nexus.remember_fact(%L)', c), 'NX031', NULL,
                 format('remember_fact with content %s', coalesce(quote_literal(c), 'NULL')))
  FROM unnest(ARRAY['', '   ', NULL]) AS c;
SELECT throws_ok($$SELECT nexus.remember_fact('x', source_episode_id => -1)$$, 'NX033', NULL,
                 'remember_fact from an episode that does not exist');
SELECT throws_ok($$SELECT nexus.remember_fact('x', importance => 1.5)$$, 'NX015', NULL, 'remember_fact with importance 1.5');
SELECT throws_ok($$SELECT nexus.remember_fact('x', metadata => '[]')$$, 'NX012', NULL, 'remember_fact with metadata []');
SELECT throws_ok($$SELECT nexus.remember_fact(repeat('x', 262145))$$, 'NX011', NULL, 'remember_fact over 256 KiB');
SELECT throws_ok($$SELECT nexus.remember_fact('x', tags => '{NULL}')$$, 'NX015', NULL, 'remember_fact with a NULL tag');
SELECT throws_ok($$SELECT * FROM nexus.get_fact(-1)$$, 'NX033', NULL, 'get_fact of an id that does not exist');
INSERT INTO ids (name, id) VALUES ('f_del', nexus.remember_fact('a fact to forget'));
SELECT is(nexus.delete_fact(pg_temp.id('f_del')), true, 'delete_fact of an existing fact: true');
SELECT is(nexus.delete_fact(pg_temp.id('f_del')), false, 'delete_fact again: false');
SELECT throws_ok(format('SELECT * FROM nexus.get_fact(%s)', pg_temp.id('f_del')), 'NX033', NULL, 'a deleted fact is not found');
RESET ROLE;
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM nexus_memory.text_postings WHERE kind = 's' AND doc_id = pg_temp.id('f_del')),
             (SELECT count(*) FROM queue WHERE source_table = 'semantic_memories' AND source_id = pg_temp.id('f_del'))$$,
    $$VALUES (0::bigint, 0::bigint)$$, 'delete_fact takes the postings and the queue items with it');

-- working memory --------------------------------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT is(nexus.working_memory_set('goal', '{"g": 1}'), NULL::timestamptz, 'working_memory_set without ttl: no expiry');
SELECT is(nexus.working_memory_get('goal'), '{"g": 1}'::jsonb, 'working_memory_get returns the value');
SELECT is(nexus.working_memory_set('goal', '[1, "two"]'), NULL::timestamptz, 'set again');
SELECT is(nexus.working_memory_get('goal'), '[1, "two"]'::jsonb, 'the new value replaces the old one');
SELECT is(nexus.working_memory_set('scalar', '"s"'), NULL::timestamptz, 'any JSON value: a string');
SELECT is(nexus.working_memory_get('scalar'), '"s"'::jsonb, 'the string round trips');
INSERT INTO ids (name, at) VALUES ('before_ttl', clock_timestamp());
INSERT INTO ids (name, at) VALUES ('ttl', nexus.working_memory_set('task:1', '{"t": 1}', ttl => '1 hour'));
SELECT ok((SELECT at FROM ids WHERE name = 'ttl')
              BETWEEN (SELECT at FROM ids WHERE name = 'before_ttl') + interval '1 hour' AND clock_timestamp() + interval '1 hour',
          'working_memory_set with ttl returns now + ttl');
SELECT is((SELECT expires_at FROM nexus.working_memory_keys('task:')), (SELECT at FROM ids WHERE name = 'ttl'),
          'working_memory_keys shows that expiry');
SELECT is(nexus.working_memory_set('task:2', '2'), NULL::timestamptz, 'another task key');
SELECT cmp_ok(nexus.working_memory_set('task:0', '0', ttl => '1 day'), '>', clock_timestamp() + interval '23 hours',
              'a key with a ttl of a day');
SELECT is(nexus.working_memory_set('stale', '"old"', ttl => '1 minute') IS NOT NULL, true, 'a key with a ttl');
SELECT is(nexus.working_memory_set('stale2', '"old"', ttl => '1 minute') IS NOT NULL, true, 'another key with a ttl');
SELECT is(ARRAY(SELECT key FROM nexus.working_memory_keys()), ARRAY['goal', 'scalar', 'stale', 'stale2', 'task:0', 'task:1', 'task:2'],
          'working_memory_keys lists the live keys in key order');
SELECT is(ARRAY(SELECT key FROM nexus.working_memory_keys('task:')), ARRAY['task:0', 'task:1', 'task:2'],
          'working_memory_keys with a prefix');
SELECT is(ARRAY(SELECT key FROM nexus.working_memory_keys('tas%')), ARRAY[]::text[],
          'a prefix is literal, not a LIKE pattern');
RESET ROLE;
-- 'stale' and 'stale2' expired a second ago
UPDATE nexus_memory.working_memory_contexts SET expires_at = clock_timestamp() - interval '1 second'
 WHERE agent_id = 'alice' AND context_key IN ('stale', 'stale2');
SET LOCAL ROLE alice;
SELECT is(nexus.working_memory_get('stale'), NULL::jsonb, 'an expired key reads as absent');
SELECT is(ARRAY(SELECT key FROM nexus.working_memory_keys('st')), ARRAY[]::text[], 'an expired key is not listed');
SELECT is(nexus.working_memory_get('never set'), NULL::jsonb, 'a key never set reads as NULL');
SELECT is(nexus.working_memory_delete('stale2'), false, 'working_memory_delete of an expired key: false (it was absent)');
SELECT is(nexus.working_memory_delete('scalar'), true, 'working_memory_delete of a live key: true');
SELECT is(nexus.working_memory_delete('scalar'), false, 'working_memory_delete again: false');
SELECT is(nexus.working_memory_get('scalar'), NULL::jsonb, 'a deleted key is gone');
SELECT throws_ok($$SELECT nexus.working_memory_set('k', NULL)$$, 'NX031', NULL, 'working_memory_set with a NULL value');
SELECT throws_ok(format('SELECT nexus.working_memory_set(%L, %L, ttl => %L)', 'k', '1', t), 'NX031', NULL,
                 format('working_memory_set with ttl %s', t))
  FROM unnest(ARRAY['0', '-1 second']) AS t;
SELECT throws_ok(format('SELECT nexus.working_memory_set(%L, %L)', k, '1'), 'NX015', NULL,
                 format('working_memory_set with key %s', coalesce(quote_literal(left(k, 10)), 'NULL')))
  FROM unnest(ARRAY['', repeat('k', 257), NULL]) AS k;
SELECT throws_ok($$SELECT nexus.working_memory_set('k', jsonb_build_object('v', repeat('x', 262144)))$$, 'NX011', NULL,
                 'working_memory_set with a value over 256 KiB');
SELECT throws_ok($$SELECT memory_system.purge_expired_working_memory()$$, '42501', NULL,
                 'agents may not purge working memory (workers do)');
RESET ROLE;
-- expiry purge: alice's stale key, an expired key of bob's; the live ones stay
SET LOCAL ROLE bob;
SELECT is(nexus.working_memory_set('b_old', '1', ttl => '1 hour') IS NOT NULL, true, 'bob sets a key with a ttl');
RESET ROLE;
UPDATE nexus_memory.working_memory_contexts SET expires_at = clock_timestamp() - interval '1 hour'
 WHERE agent_id = 'bob' AND context_key = 'b_old';
SET LOCAL ROLE nexus_worker;
SELECT is(memory_system.purge_expired_working_memory(1), 1, 'purge with a limit of 1 deletes one expired key');
SELECT is(memory_system.purge_expired_working_memory(), 1, 'purge deletes the other expired key');
SELECT is(memory_system.purge_expired_working_memory(), 0, 'nothing left to purge');
RESET ROLE;
SELECT is(ARRAY(SELECT agent_id || ':' || context_key FROM nexus_memory.working_memory_contexts ORDER BY 1),
          ARRAY['alice:goal', 'alice:task:0', 'alice:task:1', 'alice:task:2'],
          'the purge removed exactly the expired keys of every agent');

-- checkpoints -------------------------------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO ids (name, id) VALUES ('c1', nexus.save_checkpoint('{"step": 1}'));
INSERT INTO ids (name, id) VALUES ('c2', nexus.save_checkpoint('{"step": 2}', metadata => '{"why": "test"}'));
INSERT INTO ids (name, id) VALUES ('c_other', nexus.save_checkpoint('{"plan": [1, 2]}', name => 'planner'));
SELECT results_eq($$SELECT id, checkpoint_name, state, metadata FROM nexus.load_checkpoint()$$,
                  $$VALUES (pg_temp.id('c2'), 'default', '{"step": 2}'::jsonb, '{"why": "test"}'::jsonb)$$,
                  'load_checkpoint returns the latest checkpoint named default');
SELECT results_eq($$SELECT id, state, metadata FROM nexus.load_checkpoint('planner')$$,
                  $$VALUES (pg_temp.id('c_other'), '{"plan": [1, 2]}'::jsonb, '{}'::jsonb)$$,
                  'load_checkpoint by name');
SELECT is_empty($$SELECT * FROM nexus.load_checkpoint('nothing')$$, 'load_checkpoint of a name never saved: no row');
RESET ROLE;
-- a checkpoint with a higher id but an older created_at is not the latest
INSERT INTO consciousness.consciousness_checkpoints (agent_id, checkpoint_name, state, created_at)
VALUES ('alice', 'default', '{"step": 0}', now() - interval '1 hour');
SET LOCAL ROLE alice;
SELECT is((SELECT id FROM nexus.load_checkpoint()), pg_temp.id('c2'), 'latest means newest created_at, not highest id');
SELECT is(ARRAY(SELECT checkpoint_name || ':' || (state_bytes > 0)::text FROM nexus.list_checkpoints()),
          ARRAY['planner:true', 'default:true', 'default:true', 'default:true'],
          'list_checkpoints lists every checkpoint newest first, with the state size');
SELECT is(ARRAY(SELECT id FROM nexus.list_checkpoints('default', 2)), ARRAY[pg_temp.id('c2'), pg_temp.id('c1')],
          'list_checkpoints by name, limited');
SELECT throws_ok(format('SELECT * FROM nexus.list_checkpoints(limit_n => %s)', l), 'NX031', NULL,
                 format('list_checkpoints limit %s', l))
  FROM unnest(ARRAY['0', '1001', 'NULL']) AS l;
SELECT throws_ok($$SELECT nexus.save_checkpoint(NULL)$$, 'NX031', NULL, 'save_checkpoint with a NULL state');
SELECT throws_ok(format('SELECT nexus.save_checkpoint(%L, name => %L)', '{}', n), 'NX015', NULL,
                 format('save_checkpoint named %s', coalesce(quote_literal(left(n, 10)), 'NULL')))
  FROM unnest(ARRAY['', repeat('n', 129), NULL]) AS n;
SELECT throws_ok($$SELECT nexus.save_checkpoint('{}', metadata => '1')$$, 'NX012', NULL,
                 'save_checkpoint with metadata that is not an object');
SELECT is(nexus.save_checkpoint('[]', metadata => NULL) > pg_temp.id('c_other'), true,
          'save_checkpoint: any JSON state, NULL metadata means none');

-- consensus -----------------------------------------------------------------------------------------
SELECT is_empty($$SELECT * FROM nexus.consensus_read('leader')$$, 'consensus_read of a key that does not exist: no row');
SELECT is(nexus.consensus_cas('leader', 0, '"alice"'), 1::bigint, 'consensus_cas at version 0 creates the key at version 1');
SELECT results_eq($$SELECT consensus_key, value, version, updated_by FROM nexus.consensus_read('leader')$$,
                  $$VALUES ('leader', '"alice"'::jsonb, 1::bigint, 'alice')$$, 'consensus_read returns it, signed by alice');
SELECT is(nexus.consensus_cas('leader', 1, '{"who": "alice", "term": 2}'), 2::bigint, 'consensus_cas at the version read: version 2');
SELECT throws_ok($$SELECT nexus.consensus_cas('leader', 1, '"late"')$$, 'NX035', NULL, 'consensus_cas at a stale version');
SELECT is(pg_temp.error_of($$SELECT nexus.consensus_cas('leader', 1, '"late"')$$), 'NX035: current_version=2',
          'the conflict tells the current version');
SELECT throws_ok($$SELECT nexus.consensus_cas('leader', 0, '"again"')$$, 'NX035', NULL,
                 'consensus_cas creating a key that exists');
SELECT throws_ok($$SELECT nexus.consensus_cas('leader', 3, '"ahead"')$$, 'NX035', NULL,
                 'consensus_cas at a version not reached yet');
SELECT is(pg_temp.error_of($$SELECT nexus.consensus_cas('absent', 4, '1')$$), 'NX035: current_version=0',
          'consensus_cas of a key that does not exist at a version > 0: conflict, current version 0');
SELECT results_eq($$SELECT value, version FROM nexus.consensus_read('leader')$$,
                  $$VALUES ('{"who": "alice", "term": 2}'::jsonb, 2::bigint)$$, 'failed writes changed nothing');
SELECT is_empty($$SELECT * FROM nexus.consensus_read('absent')$$, 'a failed create created nothing');
SELECT throws_ok($$SELECT nexus.consensus_cas('k', 0, NULL)$$, 'NX031', NULL, 'consensus_cas with a NULL value');
SELECT throws_ok(format('SELECT nexus.consensus_cas(%L, %s, %L)', 'k', v, '1'), 'NX031', NULL,
                 format('consensus_cas at version %s', v))
  FROM unnest(ARRAY['-1', 'NULL']) AS v;
SELECT throws_ok(format('SELECT nexus.consensus_cas(%L, 0, %L)', k, '1'), 'NX015', NULL,
                 format('consensus_cas with key %s', coalesce(quote_literal(left(k, 10)), 'NULL')))
  FROM unnest(ARRAY['', repeat('k', 257), NULL]) AS k;
SELECT throws_ok($$SELECT nexus.consensus_cas('k', 0, jsonb_build_object('v', repeat('x', 262144)))$$, 'NX011', NULL,
                 'consensus_cas with a value over 256 KiB');
RESET ROLE;
-- consensus keys are shared by design: bob reads alice's key and moves it on, signed by himself
SET LOCAL ROLE bob;
SELECT is((SELECT version FROM nexus.consensus_read('leader')), 2::bigint, 'another agent reads the shared key');
SELECT is(nexus.consensus_cas('leader', 2, '"bob"'), 3::bigint, 'another agent writes it at the version it read');
SELECT is((SELECT updated_by FROM nexus.consensus_read('leader')), 'bob', 'the write is signed by bob');
RESET ROLE;

-- memory_stats ---------------------------------------------------------------------------------------
-- carol: 4 episodes (one embedded, one stale vector, one processing, one dead), 2 facts (one
-- embedded), 3 working-memory keys (one expired), 1 checkpoint
SET LOCAL ROLE carol;
INSERT INTO ids (name, id)
SELECT 'carol_e' || g, nexus.record_episode('carol episode ' || g) FROM generate_series(1, 4) AS g;
INSERT INTO ids (name, id)
SELECT 'carol_f' || g, nexus.remember_fact('carol fact ' || g) FROM generate_series(1, 2) AS g;
INSERT INTO ids (name, at) SELECT 'carol_w' || g, nexus.working_memory_set('w' || g, to_jsonb(g)) FROM generate_series(1, 3) AS g;
INSERT INTO ids (name, id) VALUES ('carol_c', nexus.save_checkpoint('{}'));
RESET ROLE;
UPDATE nexus_memory.working_memory_contexts SET expires_at = now() - interval '1 day'
 WHERE agent_id = 'carol' AND context_key = 'w3';
UPDATE memory_system.embeddings_queue SET state = 'done', processed_at = now()
 WHERE source_id IN (pg_temp.id('carol_e1'), pg_temp.id('carol_e2'), pg_temp.id('carol_f1'));
UPDATE memory_system.embeddings_queue SET state = 'processing', lease_owner = 'w', lease_expires_at = now() + interval '1 minute'
 WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('carol_e3');
UPDATE memory_system.embeddings_queue SET state = 'dead', retry_count = 5, last_error = 'boom'
 WHERE source_table = 'zep_episodic_memory' AND source_id = pg_temp.id('carol_e4');
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT 'carol', id, memory_system._embedding_model(),
       CASE WHEN id = pg_temp.id('carol_e1') THEN content_sha256 ELSE sha256('older content'::bytea) END,
       tests.fake_vector(3)
  FROM nexus_memory.zep_episodic_memory WHERE id IN (pg_temp.id('carol_e1'), pg_temp.id('carol_e2'));
INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
SELECT 'carol', id, memory_system._embedding_model(), content_sha256, tests.fake_vector(4)
  FROM nexus_memory.semantic_memories WHERE id = pg_temp.id('carol_f1');
SET LOCAL ROLE carol;
SELECT results_eq(
    $$SELECT kind, total, embedded, embedded_share, pending, processing, dead FROM nexus.memory_stats() ORDER BY kind$$,
    $$VALUES ('checkpoint', 1::bigint, NULL::bigint, NULL::float8, NULL::bigint, NULL::bigint, NULL::bigint),
             ('episode', 4, 1, 0.25, 0, 1, 1),
             ('semantic', 2, 1, 0.5, 1, 0, 0),
             ('store_text', 0, 0, NULL, 0, 0, 0),
             ('working_memory', 2, NULL, NULL, NULL, NULL, NULL)$$,
    'memory_stats: rows per kind, vectors of the current content, queue states, live working memory only');
RESET ROLE;
SET LOCAL ROLE bob;
SELECT results_eq(
    $$SELECT kind, total, embedded, embedded_share, pending, processing, dead FROM nexus.memory_stats() ORDER BY kind$$,
    $$VALUES ('checkpoint', 0::bigint, NULL::bigint, NULL::float8, NULL::bigint, NULL::bigint, NULL::bigint),
             ('episode', 0, 0, NULL, 0, 0, 0),
             ('semantic', 0, 0, NULL, 0, 0, 0),
             ('store_text', 0, 0, NULL, 0, 0, 0),
             ('working_memory', 0, NULL, NULL, NULL, NULL, NULL)$$,
    'memory_stats of an agent with nothing: zeros, and nothing of the other agents');
RESET ROLE;

-- isolation: bob with alice's ids and keys ------------------------------------------------------------
CREATE TEMP TABLE alice_before AS
SELECT 'e' AS t, id, md5(row(content, metadata, tags, importance, session_id, action_type, updated_at)::text) AS h
  FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'
UNION ALL SELECT 's', id, md5(row(content, metadata, tags, importance, source_episode_id)::text)
  FROM nexus_memory.semantic_memories WHERE agent_id = 'alice'
UNION ALL SELECT 'w', id, md5(row(context_key, value, expires_at)::text)
  FROM nexus_memory.working_memory_contexts WHERE agent_id = 'alice'
UNION ALL SELECT 'c', id, md5(row(checkpoint_name, state)::text)
  FROM consciousness.consciousness_checkpoints WHERE agent_id = 'alice'
UNION ALL SELECT 'q', id, md5(row(state, content_sha256)::text)
  FROM memory_system.embeddings_queue WHERE agent_id = 'alice';
SET LOCAL ROLE bob;
SELECT throws_ok(format('SELECT * FROM nexus.get_episode(%s)', pg_temp.id('e1')), 'NX033', NULL,
                 'bob: get_episode of alice''s episode is not found');
SELECT throws_ok(format($$SELECT nexus.update_episode(%s, content => 'pwned')$$, pg_temp.id('e1')), 'NX033', NULL,
                 'bob: update_episode of alice''s episode is not found');
SELECT throws_ok(format($$SELECT nexus.update_episode(%s, tags => '{pwned}')$$, pg_temp.id('e2')), 'NX033', NULL,
                 'bob: update_episode of alice''s episode tags is not found');
SELECT is(nexus.delete_episode(pg_temp.id('e1')), false, 'bob: delete_episode of alice''s episode is false');
SELECT is_empty($$SELECT * FROM nexus.recent_episodes(1000)$$, 'bob: recent_episodes shows none of alice''s');
SELECT is_empty($$SELECT * FROM nexus.recent_episodes(1000, session => 'pg', before_created_at => 'infinity', before_id => 9223372036854775807)$$,
                'bob: recent_episodes of alice''s session with a cursor shows nothing');
SELECT throws_ok(format($$SELECT nexus.remember_fact('stolen', source_episode_id => %s)$$, pg_temp.id('e1')), 'NX033', NULL,
                 'bob: remember_fact citing alice''s episode: not found');
SELECT throws_ok(format('SELECT * FROM nexus.get_fact(%s)', pg_temp.id('f1')), 'NX033', NULL,
                 'bob: get_fact of alice''s fact is not found');
SELECT is(nexus.delete_fact(pg_temp.id('f1')), false, 'bob: delete_fact of alice''s fact is false');
SELECT isnt(nexus.remember_fact('The walrus lives in the Arctic', tags => '{bob}'), pg_temp.id('f1'),
            'bob: the same fact as alice''s is his own row (dedup is per agent)');
SELECT is(nexus.working_memory_get('goal'), NULL::jsonb, 'bob: working_memory_get of alice''s key is NULL');
SELECT is(nexus.working_memory_delete('goal'), false, 'bob: working_memory_delete of alice''s key is false');
SELECT is_empty($$SELECT * FROM nexus.working_memory_keys()$$, 'bob: working_memory_keys lists none of alice''s');
SELECT is(nexus.working_memory_set('goal', '"bob''s"'), NULL::timestamptz, 'bob: sets the same key name');
SELECT is(nexus.working_memory_get('goal'), '"bob''s"'::jsonb, 'bob: and reads his own value');
SELECT is_empty($$SELECT * FROM nexus.load_checkpoint()$$, 'bob: load_checkpoint finds none of alice''s');
SELECT is_empty($$SELECT * FROM nexus.load_checkpoint('planner')$$, 'bob: load_checkpoint by alice''s name finds nothing');
SELECT is_empty($$SELECT * FROM nexus.list_checkpoints()$$, 'bob: list_checkpoints lists none of alice''s');
SELECT is((SELECT total FROM nexus.memory_stats() WHERE kind = 'semantic'), 1::bigint, 'bob: memory_stats counts his own fact only');
RESET ROLE;
SELECT set_eq(
    $$SELECT 'e' AS t, id, md5(row(content, metadata, tags, importance, session_id, action_type, updated_at)::text)
        FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'
      UNION ALL SELECT 's', id, md5(row(content, metadata, tags, importance, source_episode_id)::text)
        FROM nexus_memory.semantic_memories WHERE agent_id = 'alice'
      UNION ALL SELECT 'w', id, md5(row(context_key, value, expires_at)::text)
        FROM nexus_memory.working_memory_contexts WHERE agent_id = 'alice'
      UNION ALL SELECT 'c', id, md5(row(checkpoint_name, state)::text)
        FROM consciousness.consciousness_checkpoints WHERE agent_id = 'alice'
      UNION ALL SELECT 'q', id, md5(row(state, content_sha256)::text)
        FROM memory_system.embeddings_queue WHERE agent_id = 'alice'$$,
    'SELECT t, id, h FROM alice_before',
    'every row of alice (and her queue items) is exactly as before bob''s calls');
SELECT cmp_ok((SELECT count(*) FROM alice_before), '>', 40::bigint, 'alice had rows of every kind to protect');

SELECT * FROM finish();
ROLLBACK;
