-- Forgetting by filter (nexus.forget) and its verification pass (memory_system.forget_leftovers):
-- the filter, the dry run, the receipt, every derived copy gone (vectors, postings and text_stats,
-- queue items in every state, the import ledger), another agent untouched, bad input refused, and
-- nothing left of an agent after agent_remove.
BEGIN;
SELECT plan(43);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');

-- the same memories for both agents: 5 tagged "gone" (2 of session s1, 1 with metadata), 3 kept,
-- a fact with the tag and one without, and two store items
CREATE FUNCTION pg_temp.fill() RETURNS void LANGUAGE sql AS $$
    INSERT INTO nexus_memory.zep_episodic_memory (content, tags, session_id, metadata, created_at)
    SELECT format('episode %s about the %s harbour', g, CASE WHEN g <= 5 THEN 'stormy' ELSE 'quiet' END),
           CASE WHEN g <= 5 THEN '{gone,x}'::text[] ELSE '{kept}' END,
           CASE WHEN g <= 2 THEN 's1' END,
           CASE WHEN g = 3 THEN '{"customer": "ACME"}'::jsonb ELSE '{}' END,
           now() - (g || ' days')::interval
      FROM generate_series(1, 8) AS g;
    SELECT nexus.remember_fact('the stormy harbour is closed', tags => '{gone}');
    SELECT nexus.remember_fact('the quiet harbour is open', tags => '{kept}');
    SELECT nexus.store_put('{docs,u1}', 'a', '{"content": "stormy notes"}', '{"content": "stormy notes"}');
    SELECT nexus.store_put('{other}', 'b', '{"content": "quiet notes"}', '{"content": "quiet notes"}');
$$;
SET LOCAL ROLE alice;
SELECT pg_temp.fill();
SET LOCAL ROLE bob;
SELECT pg_temp.fill();
RESET ROLE;

-- every place a memory has copies in: vectors of all, one queue item done, one dead; a ledger entry
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256, tests.fake_vector(e.id)
  FROM nexus_memory.zep_episodic_memory AS e;
INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
SELECT s.agent_id, s.id, memory_system._embedding_model(), s.content_sha256, tests.fake_vector(s.id)
  FROM nexus_memory.semantic_memories AS s;
INSERT INTO nexus_memory.store_text_embeddings (agent_id, text_id, model, content_sha256, embedding)
SELECT t.agent_id, t.id, memory_system._embedding_model(), t.content_sha256, tests.fake_vector(t.id)
  FROM nexus_memory.store_texts AS t;
UPDATE memory_system.embeddings_queue SET state = 'done', processed_at = now()
 WHERE source_table = 'zep_episodic_memory' AND source_id IN (SELECT min(id) FROM nexus_memory.zep_episodic_memory GROUP BY agent_id);
UPDATE memory_system.embeddings_queue SET state = 'dead', retry_count = 5
 WHERE source_table = 'semantic_memories';
INSERT INTO memory_system.imports (format, source) VALUES ('jsonl', 'test');
INSERT INTO memory_system.import_rows (import_id, kind, agent_id, source_ref, target_id, source_sha256)
SELECT (SELECT max(import_id) FROM memory_system.imports), 'episode', e.agent_id, 'f/' || e.id, e.id, e.content_sha256
  FROM nexus_memory.zep_episodic_memory AS e WHERE 'gone' = ANY (e.tags);

CREATE TEMP VIEW bob_state AS
SELECT (SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'bob') AS episodes,
       (SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = 'bob') AS facts,
       (SELECT count(*) FROM nexus_memory.store_texts WHERE agent_id = 'bob') AS texts,
       (SELECT count(*) FROM nexus_memory.episode_embeddings WHERE agent_id = 'bob') AS vectors,
       (SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = 'bob') AS postings,
       (SELECT count(*) FROM memory_system.embeddings_queue WHERE agent_id = 'bob') AS queue,
       (SELECT count(*) FROM memory_system.import_rows WHERE agent_id = 'bob') AS ledger,
       (SELECT sum(docs) FROM nexus_memory.text_stats WHERE agent_id = 'bob') AS docs;
CREATE TEMP TABLE bob_before AS SELECT * FROM bob_state;
CREATE TEMP TABLE receipts (name text PRIMARY KEY, r jsonb);
GRANT ALL ON receipts TO PUBLIC;
INSERT INTO receipts SELECT 'bob_max', jsonb_build_object('id', max(id)) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'bob';

-- bad input ------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT nexus.forget(tags_all => '{gone}')$$, 'NX001', NULL, 'forget: a role that is no agent');
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT nexus.forget()$$, 'NX090', NULL, 'a forget with no criterion is refused');
SELECT throws_ok($$SELECT nexus.forget(kinds => '{episode}', dry_run => false)$$, 'NX090', NULL,
                 'kinds alone are no criterion');
SELECT throws_ok($$SELECT nexus.forget(tags_all => '{}', metadata_contains => '{}', dry_run => false)$$, 'NX090', NULL,
                 'an empty tag list and an empty object are no criterion');
SELECT throws_ok($$SELECT nexus.forget(tags_all => '{gone}', episode_id => 1)$$, 'NX091', NULL,
                 'an episode id and a filter together are refused');
-- in a space: a writer forgets the space's rows that match, whoever wrote them; a reader may not
RESET ROLE;
SELECT memory_system.space_create('team');
SELECT memory_system.space_grant('team', 'alice', 'write');
SELECT memory_system.space_grant('team', 'bob', 'read');
SET LOCAL ROLE alice;
SELECT nexus.record_episode('the stormy harbour, as the team heard it', tags => '{gone}', space => 'team');
SELECT nexus.record_episode('the quiet harbour, as the team heard it', tags => '{kept}', space => 'team');
SET LOCAL ROLE bob;
SELECT throws_ok($$SELECT nexus.forget(tags_all => '{gone}', space => 'team', dry_run => false)$$, 'NX080', NULL,
                 'forgetting in a space it may only read: the error of a space it is not in');
SET LOCAL ROLE alice;
SELECT is(nexus.forget(tags_all => '{gone}', space => 'team', dry_run => false) -> 'kinds',
          '{"episode": 1, "semantic": 0, "store": 0}'::jsonb, 'a writer forgets in the space what matches there');
RESET ROLE;
SELECT is((SELECT array_agg(e.content) FROM nexus_memory.zep_episodic_memory AS e
            JOIN memory_system.spaces AS s ON s.space_id = e.agent_id WHERE s.name = 'team'),
          '{"the quiet harbour, as the team heard it"}'::text[], 'the space keeps what did not match');
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT nexus.forget(kinds => '{episode,nope}', tags_all => '{gone}')$$, 'NX031', NULL,
                 'an unknown kind is refused');

-- dry run --------------------------------------------------------------------------------------
INSERT INTO receipts SELECT 'dry', nexus.forget(tags_all => '{gone}');
SELECT is((SELECT r -> 'dry_run' FROM receipts WHERE name = 'dry'), 'true'::jsonb, 'a filter is a dry run by default');
SELECT is((SELECT r -> 'kinds' FROM receipts WHERE name = 'dry'), '{"episode": 5, "semantic": 1, "store": 0}'::jsonb,
          'the dry run counts what would go, per kind (store items have no tags)');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE 'gone' = ANY (tags)), 5::bigint,
          'a dry run deletes nothing');
SELECT is((SELECT (r -> 'kinds' ->> 'episode')::int FROM (SELECT nexus.forget(session => 's1') AS r) AS x), 2,
          'session filter: the episodes of the session (facts belong to none)');
SELECT is((SELECT r -> 'kinds' FROM (SELECT nexus.forget(metadata_contains => '{"customer": "ACME"}') AS r) AS x),
          '{"episode": 1, "semantic": 0, "store": 0}'::jsonb, 'metadata filter');
SELECT is((SELECT (r -> 'kinds' ->> 'episode')::int FROM (SELECT nexus.forget(kinds => '{episode}',
                   since => now() - interval '4 days 1 hour', until => now() - interval '1 day 1 hour') AS r) AS x), 3,
          'since (inclusive) and until (exclusive) over created_at');
SELECT is((SELECT r -> 'kinds' FROM (SELECT nexus.forget(kinds => '{store}', metadata_contains => '{"namespace": ["docs"]}') AS r) AS x),
          '{"store": 1}'::jsonb, 'store items match by their namespace and key, as search shows them');
-- the same matches as memory_search's filters
SELECT is((SELECT (r -> 'kinds' ->> 'episode')::bigint FROM (SELECT nexus.forget(kinds => '{episode}', tags_all => '{gone}',
                                                                                  session => 's1') AS r) AS x),
          (SELECT count(*) FROM nexus.memory_search('harbour', kinds => '{episode}', tags_all => '{gone}', session => 's1',
                                                    limit_n => 100)),
          'forget matches what memory_search finds with the same filters');

-- forget for real ------------------------------------------------------------------------------
INSERT INTO receipts SELECT 'real', nexus.forget(tags_all => '{gone}', dry_run => false);
RESET ROLE;
SELECT is((SELECT r -> 'kinds' FROM receipts WHERE name = 'real'), (SELECT r -> 'kinds' FROM receipts WHERE name = 'dry'),
          'the receipt counts what the dry run said');
SELECT is((SELECT r -> 'places' FROM receipts WHERE name = 'real'), (SELECT r -> 'places' FROM receipts WHERE name = 'dry'),
          'per place too');
SELECT is((SELECT (r -> 'places' ->> 'vectors')::int FROM receipts WHERE name = 'real'), 6, 'the receipt counts the vectors');
SELECT is((SELECT (r -> 'places' ->> 'queue_items')::int FROM receipts WHERE name = 'real'), 6,
          'the receipt counts the queue items (done and dead ones too)');
SELECT ok((SELECT (r -> 'places' ->> 'postings')::int > 20 FROM receipts WHERE name = 'real'), 'the receipt counts the postings');
SELECT is((SELECT array_agg(k ORDER BY k) FROM receipts, jsonb_object_keys(r) AS k WHERE name = 'real'),
          '{at,batches,dry_run,kinds,places}', 'the receipt holds counts and a time, no content');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice' AND 'gone' = ANY (tags))
          + (SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = 'alice' AND 'gone' = ANY (tags)), 0::bigint,
          'the rows are gone');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'), 3::bigint, 'the others are kept');
SELECT is((SELECT count(*) FROM nexus_memory.episode_embeddings WHERE agent_id = 'alice'), 3::bigint, 'their vectors are gone');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = 'alice' AND lexeme = 'stormi'), 1::bigint,
          'their postings are gone (the store item''s stays)');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue AS q WHERE q.agent_id = 'alice' AND q.source_table <> 'store_texts'),
          4::bigint, 'their queue items are gone, done and dead ones too');
SELECT is((SELECT count(*) FROM memory_system.import_rows WHERE agent_id = 'alice'), 0::bigint,
          'their import-ledger entries (content checksums) are gone');
SELECT is((SELECT sum(docs) FROM nexus_memory.text_stats WHERE agent_id = 'alice'), 6::numeric,
          'text_stats counts the documents left (3 episodes, 1 fact, 2 store texts)');
SELECT is((SELECT sum(tokens) FROM nexus_memory.text_stats WHERE agent_id = 'alice'),
          (SELECT sum(tf)::numeric FROM nexus_memory.text_postings WHERE agent_id = 'alice'), 'and their tokens');
SELECT is((SELECT sum(remaining) FROM memory_system.forget_leftovers('alice', p_tags_all => '{gone}')), 0::numeric,
          'the verification pass finds nothing left');
SELECT is((SELECT remaining FROM memory_system.forget_leftovers('alice', p_tags_all => '{kept}') WHERE place = 'episodes'),
          3::bigint, 'and finds what is left of a filter not forgotten');
SELECT is((SELECT s::text FROM bob_state AS s), (SELECT b::text FROM bob_before AS b), 'another agent''s rows and copies are untouched');

-- store items, the id form ---------------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO receipts SELECT 'store', nexus.forget(kinds => '{store}', metadata_contains => '{"namespace": ["docs"]}',
                                                  dry_run => false);
SELECT is((SELECT (r -> 'places' ->> 'store_texts')::int FROM receipts WHERE name = 'store'), 1, 'a store item goes with its texts');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE lexeme = 'stormi'), 0::bigint, 'and their postings');
SELECT is((SELECT nexus.forget(episode_id => (SELECT min(id) FROM nexus_memory.zep_episodic_memory)) -> 'kinds'),
          '{"episode": 1}'::jsonb, 'an episode id is forgotten at once');
SELECT is((SELECT nexus.forget(episode_id => (SELECT max(id) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'),
                               dry_run => true) -> 'kinds'), '{"episode": 1}'::jsonb, 'or counted with dry_run');
INSERT INTO receipts SELECT 'bob_id', nexus.forget(episode_id => (SELECT (r ->> 'id')::bigint FROM receipts WHERE name = 'bob_max'));
RESET ROLE;
SELECT is((SELECT r -> 'kinds' FROM receipts WHERE name = 'bob_id'), '{"episode": 0}'::jsonb,
          'another agent''s episode id forgets nothing');
SELECT is((SELECT s::text FROM bob_state AS s), (SELECT b::text FROM bob_before AS b), 'bob still has everything');

-- the whole agent ------------------------------------------------------------------------------
SELECT ok((SELECT sum(remaining) FROM memory_system.forget_leftovers('bob')) > 0, 'an agent with memories has plenty left');
INSERT INTO memory_system.agent_tokens (agent_id, token_sha256) VALUES ('bob', sha256('t'::bytea));
SELECT memory_system.agent_remove('bob', true);
SELECT is((SELECT string_agg(place || '=' || remaining, ', ') FROM memory_system.forget_leftovers('bob') WHERE remaining > 0),
          NULL, 'after agent_remove nothing of the agent is left: rows, copies, ledger, tokens, role, partitions');
SELECT is((SELECT count(*) FROM memory_system.forget_leftovers('bob')), 16::bigint, 'the whole-agent pass checks 16 places');

SELECT * FROM finish();
ROLLBACK;
