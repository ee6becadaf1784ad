-- Retention by rule and the read record (docs/privacy.md): rules checked (NX095/NX096) and kept to
-- their agent, a dry run that stores nothing, the sweep in bounded batches that takes what a rule
-- says with its derived copies and never another agent's rows; reads off by default, recorded
-- when on with exactly the ids returned in order, append-only (NX100), row-level security on
-- them, another agent's reads refused (NX101), read-only transactions (NX102), day partitions
-- made ahead and dropped past their retention.
BEGIN;
SELECT plan(82);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');

-- the kinds and ids a query returns, in order
CREATE FUNCTION pg_temp.hits(p_sql text, OUT kinds text[], OUT ids bigint[]) LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(q.kind::text ORDER BY q.ord), ''{}''), '
                   'coalesce(array_agg(q.id ORDER BY q.ord), ''{}'') '
                   'FROM (SELECT s.*, row_number() OVER () AS ord FROM (%s) AS s) AS q', p_sql) INTO kinds, ids;
END
$$;
-- the last read recorded for an agent (as the owner)
CREATE FUNCTION pg_temp.last_read(p_agent text) RETURNS memory_system.reads LANGUAGE sql
AS $$ SELECT r FROM memory_system.reads AS r WHERE r.agent_id = p_agent ORDER BY r.id DESC LIMIT 1 $$;
CREATE FUNCTION pg_temp.read_count(p_agent text) RETURNS bigint LANGUAGE sql
AS $$ SELECT count(*) FROM memory_system.reads AS r WHERE r.agent_id = p_agent $$;
-- what each read returned, kept for the checks made as the owner
CREATE TEMP TABLE shown (name text PRIMARY KEY, kinds text[], ids bigint[]);
GRANT ALL ON shown TO PUBLIC;
CREATE FUNCTION pg_temp.shown(p_name text) RETURNS bigint[] LANGUAGE sql
AS $$ SELECT ids FROM shown WHERE name = p_name $$;

-- memories: alice has 5 old unimportant episodes, 2 old important ones, 2 new ones and 2 old
-- facts; bob has the same old unimportant episodes
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content, importance, created_at)
SELECT format('alice old note %s about invoices', g), 0.1, now() - interval '200 days' - g * interval '1 hour'
  FROM generate_series(1, 5) AS g;
INSERT INTO nexus_memory.zep_episodic_memory (content, importance, created_at)
SELECT format('alice old important note %s about invoices', g), 0.9, now() - interval '300 days'
  FROM generate_series(1, 2) AS g;
INSERT INTO nexus_memory.zep_episodic_memory (content, importance)
SELECT format('alice new note %s about invoices', g), 0.1 FROM generate_series(1, 2) AS g;
INSERT INTO nexus_memory.semantic_memories (content, importance, created_at)
SELECT format('alice old fact %s', g), 0.1, now() - interval '400 days' FROM generate_series(1, 2) AS g;
SET LOCAL ROLE bob;
INSERT INTO nexus_memory.zep_episodic_memory (content, importance, created_at)
SELECT format('bob old note %s about invoices', g), 0.1, now() - interval '200 days'
  FROM generate_series(1, 5) AS g;
RESET ROLE;

-- retention rules: bad input ------------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT nexus.retention_set('episode', '-1 day')$$, 'NX095', NULL, 'a negative age is refused');
SELECT throws_ok($$SELECT nexus.retention_set('episode', '0 seconds')$$, 'NX095', NULL, 'an age of zero is refused');
SELECT throws_ok($$SELECT nexus.retention_set('episode', NULL)$$, 'NX095', NULL, 'no age is refused');
SELECT throws_ok($$SELECT nexus.retention_set('episode', '1 day', 1.5)$$, 'NX095', NULL, 'an importance over 1 is refused');
SELECT throws_ok($$SELECT nexus.retention_set('episode', '1 day', -0.1)$$, 'NX095', NULL, 'a negative importance is refused');
SELECT throws_ok($$SELECT nexus.retention_set('checkpoint', '1 day')$$, 'NX095', NULL, 'an unknown kind is refused');
SELECT throws_ok($$SELECT memory_system.retention_set('bob', 'episode', '1 day')$$, 'NX096', NULL,
                 'an agent cannot set another agent''s rule (it does not see it)');
RESET ROLE;
SELECT throws_ok($$SELECT memory_system.retention_set('nobody', 'episode', '1 day')$$, 'NX096', NULL,
                 'the operator names a registered agent');
SELECT throws_ok($$INSERT INTO memory_system.retention_rules (agent_id, kind, older_than) VALUES ('alice', 'episode', '-1 day')$$,
                 '23514', NULL, 'the table refuses a negative age written directly');

-- a dry run counts and stores nothing ------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT is(nexus.retention_set('episode', '180 days', 0.3, dry_run => true), 5::bigint,
          'a dry run counts what the rule would take now (old and unimportant)');
SELECT is(nexus.retention_set('episode', '180 days', dry_run => true), 7::bigint,
          'without importance_below, every old episode counts');
SELECT is((SELECT count(*) FROM nexus.retention_rules()), 0::bigint, 'a dry run stores no rule');
SELECT is(nexus.retention_set('episode', '180 days', 0.3), 5::bigint, 'setting a rule returns what it takes now');
SELECT is(nexus.retention_set('semantic', '1 year'), 2::bigint, 'a rule for facts');
SELECT results_eq($$SELECT kind, older_than, importance_below, removed, matching FROM nexus.retention_rules()$$,
                  $$VALUES ('episode', interval '180 days', 0.3::real, 0::bigint, 5::bigint),
                           ('semantic', interval '1 year', NULL::real, 0::bigint, 2::bigint)$$,
                  'the agent lists its rules with what each would take');
SELECT is(nexus.retention_set('semantic', '2 years'), 0::bigint, 'setting a kind again replaces its rule');
SELECT is((SELECT older_than FROM nexus.retention_rules() WHERE kind = 'semantic'), interval '2 years',
          'one rule per kind');
SELECT nexus.retention_set('semantic', '1 year');
RESET ROLE;
-- bob's rule (set by the operator) takes only what is important to nobody
SELECT is(memory_system.retention_set('bob', 'episode', '180 days', 0.05), 0::bigint,
          'the operator sets a rule for bob');
SET LOCAL ROLE alice;
SELECT is((SELECT count(*) FROM memory_system.retention_rules), 2::bigint, 'an agent sees its own rules only');
SELECT is(memory_system.retention_remove('bob', 'episode'), false, 'an agent cannot remove another agent''s rule');
RESET ROLE;
SELECT is((SELECT set_by FROM memory_system.retention_rules WHERE agent_id = 'bob'), session_user::text,
          'a rule records who set it');

-- the sweep --------------------------------------------------------------------------------------
SET LOCAL ROLE nexus_agent;
SELECT throws_ok($$SELECT memory_system.retention_sweep()$$, '42501', NULL, 'agents do not run the sweep');
RESET ROLE;
CREATE TEMP TABLE before AS
    SELECT e.agent_id, e.id FROM nexus_memory.zep_episodic_memory AS e;
SELECT is(memory_system.retention_sweep(3), 3, 'a sweep removes at most its limit');
SELECT set_eq($$SELECT content FROM nexus_memory.zep_episodic_memory
                 WHERE agent_id = 'alice' AND importance < 0.3 AND created_at < now() - interval '180 days'$$,
              ARRAY['alice old note 1 about invoices', 'alice old note 2 about invoices'],
              'the oldest go first, the rest wait for the next sweep');
SELECT is(memory_system.retention_sweep(100), 4, 'the next sweep takes the rest: 2 episodes and 2 facts');
SELECT is(memory_system.retention_sweep(100), 0, 'then nothing is left to take');
SELECT set_eq($$SELECT content FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'$$,
              ARRAY['alice old important note 1 about invoices', 'alice old important note 2 about invoices',
                    'alice new note 1 about invoices', 'alice new note 2 about invoices'],
              'alice keeps her important and her new episodes');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'bob'), 5::bigint,
          'bob''s episodes are untouched (his rule takes none of them)');
SELECT is_empty($$SELECT p.doc_id FROM nexus_memory.text_postings AS p
                   WHERE p.kind = 'e' AND (p.agent_id, p.doc_id) IN (SELECT agent_id, id FROM before)
                     AND (p.agent_id, p.doc_id) NOT IN (SELECT agent_id, id FROM nexus_memory.zep_episodic_memory)$$,
                'the removed episodes have no postings left');
SELECT is_empty($$SELECT q.id FROM memory_system.embeddings_queue AS q
                   WHERE q.source_table = 'zep_episodic_memory'
                     AND (q.agent_id, q.source_id) IN (SELECT agent_id, id FROM before)
                     AND (q.agent_id, q.source_id) NOT IN (SELECT agent_id, id FROM nexus_memory.zep_episodic_memory)$$,
                'the removed episodes have no queue items left');
SELECT is((SELECT count(*) FROM nexus_memory.text_stats WHERE agent_id = 'alice' AND docs > 0) > 0, true,
          'alice''s corpus statistics remain');
SELECT is((SELECT sum(docs) FROM nexus_memory.text_stats WHERE agent_id = 'alice'), 4::numeric,
          'her corpus statistics count her 4 episodes left');
SELECT results_eq($$SELECT kind, removed, last_swept_at IS NOT NULL FROM memory_system.retention_rules
                     WHERE agent_id = 'alice' ORDER BY kind$$,
                  $$VALUES ('episode', 5::bigint, true), ('semantic', 2::bigint, true)$$,
                  'each rule counts what it removed');
SET LOCAL ROLE alice;
SELECT results_eq($$SELECT kind, removed_by_retention FROM nexus.memory_stats() WHERE kind IN ('episode', 'semantic')$$,
                  $$VALUES ('episode', 5::bigint), ('semantic', 2::bigint)$$,
                  'memory_stats shows what retention removed');
SELECT is(nexus.retention_remove('semantic'), true, 'an agent removes its rule');
SELECT is(nexus.retention_remove('semantic'), false, 'removing it again finds none');
RESET ROLE;

-- the read record: off by default --------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT ok((pg_temp.hits($$SELECT kind, id FROM nexus.memory_search('invoices')$$)).ids <> '{}', 'alice finds her notes');
RESET ROLE;
SELECT is(pg_temp.read_count('alice'), 0::bigint, 'reads are not recorded by default');
SELECT memory_system.reads_set(true, 'alice');
SELECT memory_system._reads_maintain();

-- recorded: exactly the ids returned, in order ---------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO shown
SELECT 'search', h.* FROM pg_temp.hits($$SELECT kind, id FROM nexus.memory_search('alice invoices important', limit_n => 3)$$) AS h;
SELECT is(cardinality(pg_temp.shown('search')), 3, 'the search returned three hits');
RESET ROLE;
SELECT is((pg_temp.last_read('alice')).ids, pg_temp.shown('search'), 'memory_search: the ids returned, in order');
SELECT is((pg_temp.last_read('alice')).kinds, (SELECT kinds FROM shown WHERE name = 'search'), 'memory_search: their kinds');
SELECT is((pg_temp.last_read('alice')).function, 'memory_search', 'the function is named');
SELECT is((pg_temp.last_read('alice')).query_sha256, sha256('alice invoices important'::bytea), 'the query''s SHA-256');
SELECT is((pg_temp.last_read('alice')).query, NULL, 'not its text, unless configured');
SELECT is(pg_temp.read_count('alice'), 1::bigint, 'one search, one record');
SELECT is((SELECT tableoid::regclass::text FROM memory_system.reads WHERE agent_id = 'alice'),
          'nexus_parts.reads_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD'), 'it lands in its day''s partition');
SET LOCAL ROLE alice;
SELECT is(cardinality((pg_temp.hits($$SELECT 'x' AS kind, id FROM nexus.memory_search('zebra unicorn')$$)).ids), 0,
          'a search that finds nothing');
RESET ROLE;
SELECT is((pg_temp.last_read('alice')).ids, '{}'::bigint[], 'is recorded too, with no ids');
SET LOCAL ROLE alice;
INSERT INTO shown
SELECT 'recent', h.* FROM pg_temp.hits($$SELECT 'episode' AS kind, id FROM nexus.recent_episodes(limit_n => 3)$$) AS h;
RESET ROLE;
SELECT is((pg_temp.last_read('alice')).ids, pg_temp.shown('recent'), 'recent_episodes: the ids returned, in order');
SET LOCAL ROLE alice;
SELECT nexus.remember_fact('The user lives in Austin.', key => 'user.city');
SELECT nexus.remember_fact('The user lives in Denver.', key => 'user.city');
INSERT INTO shown
SELECT 'history', h.* FROM pg_temp.hits($$SELECT 'semantic' AS kind, id FROM nexus.fact_history(key => 'user.city')$$) AS h;
RESET ROLE;
SELECT is(cardinality(pg_temp.shown('history')), 2, 'the history has two facts');
SELECT is((pg_temp.last_read('alice')).ids, pg_temp.shown('history'), 'fact_history: the ids returned, in order');
SET LOCAL ROLE alice;
SELECT is((SELECT content FROM nexus.get_fact(key => 'user.city')), 'The user lives in Denver.', 'get_fact');
RESET ROLE;
SELECT is((pg_temp.last_read('alice')).ids, ARRAY[(pg_temp.shown('history'))[2]], 'get_fact: the fact returned');
SET LOCAL ROLE alice;
SELECT nexus.store_put('{notes}', 'n1', '{"content": "green tea"}', '{"content": "green tea"}');
SELECT is((SELECT value FROM nexus.store_get('{notes}', 'n1')), '{"content": "green tea"}'::jsonb, 'store_get');
RESET ROLE;
SELECT is((pg_temp.last_read('alice')).ids,
          ARRAY(SELECT id FROM nexus_memory.store_items WHERE agent_id = 'alice' AND key = 'n1'), 'store_get: the item returned');
SET LOCAL ROLE alice;
SELECT is((SELECT count(*) FROM nexus.store_search('{notes}', 'tea')), 1::bigint, 'store_search');
RESET ROLE;
SELECT is(((pg_temp.last_read('alice')).function, (pg_temp.last_read('alice')).ids),
          ('store_search'::text, ARRAY(SELECT id FROM nexus_memory.store_items WHERE agent_id = 'alice' AND key = 'n1')),
          'store_search: the items returned');

-- on for one agent, for all, off for one; the query text when configured ------------------------
SET LOCAL ROLE bob;
SELECT nexus.recent_episodes();
RESET ROLE;
SELECT is(pg_temp.read_count('bob'), 0::bigint, 'bob''s reads are not recorded: on for alice only');
SELECT memory_system.reads_set(true, p_query_text => true);
SET LOCAL ROLE bob;
SELECT nexus.memory_search('bob notes');
RESET ROLE;
SELECT is(((pg_temp.last_read('bob')).function, (pg_temp.last_read('bob')).query), ('memory_search'::text, 'bob notes'::text),
          'on for all: bob''s reads are recorded, with the text when configured');
SELECT memory_system.reads_set(false, 'bob');
SET LOCAL ROLE bob;
SELECT nexus.memory_search('bob notes');
RESET ROLE;
SELECT is(pg_temp.read_count('bob'), 1::bigint, 'off for bob overrides on for all');
SELECT throws_ok($$SELECT memory_system.reads_set(true, 'nobody')$$, 'NX096', NULL, 'reads_set names a registered agent');
SELECT throws_ok($$SELECT memory_system.reads_set(NULL, p_keep_days => 0)$$, 'NX103', NULL, 'reads are kept a day at least');

-- append-only, row-level security, another agent's reads ----------------------------------------
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_catalog.pg_class
             WHERE oid = 'memory_system.reads'::regclass), 'the read record has row-level security forced');
SELECT throws_ok($$UPDATE memory_system.reads SET ids = '{}'$$, 'NX100', NULL, 'the owner cannot change a read');
SELECT throws_ok($$DELETE FROM memory_system.reads$$, 'NX100', NULL, 'the owner cannot delete a read');
SELECT throws_ok($$TRUNCATE memory_system.reads$$, 'NX100', NULL, 'nor truncate the record');
SET LOCAL ROLE alice;
SELECT throws_ok($$UPDATE memory_system.reads SET ids = '{}'$$, '42501', NULL, 'an agent cannot change its reads');
SELECT throws_ok($$INSERT INTO memory_system.reads (agent_id, function, kinds, ids) VALUES ('alice', 'x', '{}', '{}')$$,
                 '42501', NULL, 'an agent cannot write reads of its own making');
SELECT is((SELECT array_agg(DISTINCT agent_id) FROM memory_system.reads), ARRAY['alice'], 'an agent sees its own reads only');
SELECT is((SELECT count(*) FROM nexus.read_log()), pg_temp.read_count('alice'), 'read_log: its own reads');
SELECT throws_ok($$SELECT * FROM nexus.read_log(agent => 'bob')$$, 'NX101', NULL, 'asking for another agent''s reads is refused');
RESET ROLE;
SET LOCAL ROLE nexus_ro;
SELECT is((SELECT array_agg(DISTINCT agent_id ORDER BY agent_id) FROM memory_system.reads), ARRAY['alice', 'bob'],
          'analysts read every agent''s reads');
RESET ROLE;
CREATE FUNCTION pg_temp.read_only_search() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('transaction_read_only', 'on', true);
    PERFORM nexus.recent_episodes();
END
$$;
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT pg_temp.read_only_search()$$, 'NX102', NULL,
                 'a recorded read in a read-only transaction is refused, not left unrecorded');
RESET ROLE;

-- a write after a read that made its commit asynchronous makes it synchronous again -------------
SET LOCAL synchronous_commit = off;
SELECT set_config('nexus.reads_commit', 'on', true);
SET LOCAL ROLE alice;
SELECT nexus.record_episode('a write after a read');
RESET ROLE;
SELECT is(current_setting('synchronous_commit'), 'on', 'a write after a read commits synchronously again');
SELECT is(current_setting('nexus.reads_commit'), '', 'and only once');

-- day partitions: made ahead, dropped past their retention ---------------------------------------
SELECT is((SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = 'nexus_parts'::regnamespace
                                                      AND relname ~ '^reads_[0-9]{8}$'
                                                      AND to_date(substr(relname, 7), 'YYYYMMDD') > (now() AT TIME ZONE 'UTC')::date),
          7::bigint, 'a week of partitions is made ahead');
CREATE TABLE nexus_parts.reads_20000101 PARTITION OF memory_system.reads
    FOR VALUES FROM ('2000-01-01 00:00+00') TO ('2000-01-02 00:00+00');
INSERT INTO memory_system.reads (agent_id, read_at, function, kinds, ids)
VALUES ('alice', '2000-01-01 12:00+00', 'old', '{}', '{}'), ('alice', '2000-02-01 12:00+00', 'old', '{}', '{}');
SELECT memory_system._reads_maintain();
SELECT is(to_regclass('nexus_parts.reads_20000101'), NULL, 'a day past its retention is dropped');
SELECT is((SELECT count(*) FROM memory_system.reads WHERE function = 'old'), 0::bigint,
          'and the DEFAULT partition''s rows as old are deleted');
SELECT ok(pg_temp.read_count('alice') > 5, 'the recent reads stay');

-- a space's rule: set on the space's memory (nexus retention set --agent SPACE), swept like an agent's
SELECT memory_system.space_create('archive');
SELECT memory_system.space_grant('archive', 'alice', 'write');
CREATE TEMP TABLE archive AS SELECT space_id AS id FROM memory_system.spaces WHERE name = 'archive';
GRANT SELECT ON archive TO PUBLIC;
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content, importance, created_at)
VALUES ((SELECT id FROM archive), 'an old shared note', 0.1, now() - interval '400 days'),
       ((SELECT id FROM archive), 'a new shared note', 0.1, now());
RESET ROLE;
SELECT is(memory_system.retention_set((SELECT id FROM archive), 'episode', '1 year'), 1::bigint,
          'a space''s rule takes its old rows');
SELECT is(memory_system.retention_sweep(100), 1, 'the sweep removes them');
SELECT is((SELECT array_agg(content) FROM nexus_memory.zep_episodic_memory WHERE agent_id = (SELECT id FROM archive)),
          '{"a new shared note"}'::text[], 'the space keeps its new rows');

SELECT * FROM finish();
ROLLBACK;
