-- Row-level security: an agent sees and changes only its own rows, in every agent-owned table.
-- (Attacks that need a real login, such as SET ROLE to another agent, are in tests/test_isolation.py:
-- here the session user is a superuser, who may SET ROLE to anyone.)
BEGIN;
SELECT plan(44);

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');

SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content, tags) VALUES ('alice one', '{a}'), ('alice two', '{a}');
INSERT INTO nexus_memory.semantic_memories (content) VALUES ('alice fact');
INSERT INTO nexus_memory.working_memory_contexts (context_key, value) VALUES ('goal', '{"g": "alice"}');
INSERT INTO consciousness.consciousness_checkpoints (state) VALUES ('{"mood": "alice"}');
INSERT INTO consciousness.distributed_consensus (consensus_key, value) VALUES ('leader', '"alice"');
RESET ROLE;

SET LOCAL ROLE bob;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('bob one');
INSERT INTO nexus_memory.semantic_memories (content) VALUES ('bob fact');
INSERT INTO nexus_memory.working_memory_contexts (context_key, value) VALUES ('goal', '{"g": "bob"}');
INSERT INTO consciousness.consciousness_checkpoints (state) VALUES ('{"mood": "bob"}');
RESET ROLE;

-- alice's episode has a vector (written as the worker would)
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT agent_id, id, memory_system._embedding_model(), content_sha256, tests.fake_vector(1)
  FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice' AND content = 'alice one';

-- a snapshot of alice's rows, to prove bob changed none of them
CREATE TEMP TABLE alice_before AS
SELECT 'e' AS t, id, md5(row(content, metadata, tags, importance)::text) AS h
  FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'
UNION ALL SELECT 's', id, md5(content) FROM nexus_memory.semantic_memories WHERE agent_id = 'alice'
UNION ALL SELECT 'w', id, md5(value::text) FROM nexus_memory.working_memory_contexts WHERE agent_id = 'alice'
UNION ALL SELECT 'c', id, md5(state::text) FROM consciousness.consciousness_checkpoints WHERE agent_id = 'alice';
GRANT SELECT ON alice_before TO PUBLIC;

SET LOCAL ROLE bob;
-- reading
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory), 1::bigint, 'bob sees only his episode');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'), 0::bigint,
          'bob sees no alice episode even when asking for them');
SELECT is((SELECT count(*) FROM nexus_memory.semantic_memories), 1::bigint, 'bob sees only his fact');
SELECT is((SELECT count(*) FROM nexus_memory.working_memory_contexts), 1::bigint, 'bob sees only his working memory');
SELECT is((SELECT value->>'g' FROM nexus_memory.working_memory_contexts WHERE context_key = 'goal'), 'bob',
          'same key, bob gets his own value');
SELECT is((SELECT count(*) FROM consciousness.consciousness_checkpoints), 1::bigint, 'bob sees only his checkpoint');
SELECT is((SELECT array_agg(agent_id) FROM memory_system.agents), ARRAY['bob'], 'bob sees only himself in the registry');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE content_tsv @@ to_tsquery('english', 'alice')),
          0::bigint, 'full text over alice''s words finds nothing for bob');
SELECT is(nexus.current_agent(), 'bob', 'current_agent() is the role bob authenticated as');
-- what the system keeps per agent: vectors, text postings, corpus statistics, queue items
SELECT is((SELECT count(*) FROM nexus_memory.episode_embeddings), 0::bigint, 'bob sees no vector of alice''s');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM nexus_memory.text_postings), ARRAY['bob'], 'bob sees only his own text postings');
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE lexeme = 'alic'), 0::bigint,
          'bob finds no posting of alice''s words');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM nexus_memory.text_stats), ARRAY['bob'], 'bob sees only his own corpus statistics');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM memory_system.embeddings_queue), ARRAY['bob'], 'bob sees only his own queue items');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE agent_id = 'alice'), 0::bigint,
          'bob sees no queue item of alice''s even when asking for them');

-- writing as alice
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES ('alice', 'forged')$$,
                 '42501', NULL, 'bob cannot insert an episode as alice');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (agent_id, content) VALUES ('alice', 'forged')$$,
                 '42501', NULL, 'bob cannot insert a fact as alice');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (agent_id, context_key, value) VALUES ('alice', 'k', '1')$$,
                 '42501', NULL, 'bob cannot insert working memory as alice');
SELECT throws_ok($$INSERT INTO consciousness.consciousness_checkpoints (agent_id, state) VALUES ('alice', '{}')$$,
                 '42501', NULL, 'bob cannot insert a checkpoint as alice');
SELECT throws_ok($$UPDATE nexus_memory.zep_episodic_memory SET agent_id = 'alice'$$,
                 '42501', NULL, 'bob cannot move his episode to alice');

-- changing alice's rows
SELECT is(tests.affected($q$UPDATE nexus_memory.zep_episodic_memory SET content = 'pwned' WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob updates no alice episode');
SELECT is(tests.affected($q$UPDATE nexus_memory.zep_episodic_memory SET content = 'bob edited'$q$), 1::bigint,
          'an unqualified update touches only bob''s one row');
SELECT is(tests.affected($q$DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob deletes no alice episode');
SELECT is(tests.affected($q$UPDATE nexus_memory.semantic_memories SET content = 'pwned' WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob updates no alice fact');
SELECT is(tests.affected($q$DELETE FROM nexus_memory.semantic_memories WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob deletes no alice fact');
SELECT is(tests.affected($q$UPDATE nexus_memory.working_memory_contexts SET value = '"pwned"' WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob updates no alice working memory');
SELECT is(tests.affected($q$DELETE FROM nexus_memory.working_memory_contexts WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob deletes no alice working memory');
SELECT is(tests.affected($q$DELETE FROM consciousness.consciousness_checkpoints WHERE agent_id = 'alice'$q$),
          0::bigint, 'bob deletes no alice checkpoint');
SELECT throws_ok($$UPDATE consciousness.consciousness_checkpoints SET state = '{}'$$,
                 '42501', NULL, 'checkpoints are append-only for agents');
SELECT throws_ok($$TRUNCATE nexus_memory.zep_episodic_memory$$, '42501', NULL, 'bob cannot truncate');
SELECT throws_ok($$ALTER TABLE nexus_memory.zep_episodic_memory DISABLE ROW LEVEL SECURITY$$,
                 '42501', NULL, 'bob cannot switch row-level security off');
SELECT throws_ok($$SET row_security = off; SELECT count(*) FROM nexus_memory.zep_episodic_memory$$,
                 '42501', NULL, 'row_security = off makes the query fail, never bypasses');
RESET row_security;

-- shared consensus keys: readable by all, writes signed with one's own role
SELECT is((SELECT value #>> '{}' FROM consciousness.distributed_consensus WHERE consensus_key = 'leader'), 'alice',
          'bob reads the shared consensus key');
SELECT lives_ok($$UPDATE consciousness.distributed_consensus SET value = '"bob"', updated_by = 'alice', version = 99 WHERE consensus_key = 'leader'$$,
                'bob updates the shared key');
SELECT is((SELECT updated_by || ':' || version FROM consciousness.distributed_consensus WHERE consensus_key = 'leader'), 'bob:2',
          'the write is signed by bob whatever he claims, and is version 2 whatever he sets');
SELECT throws_ok($$DELETE FROM consciousness.distributed_consensus$$, '42501', NULL, 'agents cannot delete consensus keys');
RESET ROLE;

SELECT set_eq(
    $$SELECT 'e' AS t, id, md5(row(content, metadata, tags, importance)::text) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice'
      UNION ALL SELECT 's', id, md5(content) FROM nexus_memory.semantic_memories WHERE agent_id = 'alice'
      UNION ALL SELECT 'w', id, md5(value::text) FROM nexus_memory.working_memory_contexts WHERE agent_id = 'alice'
      UNION ALL SELECT 'c', id, md5(state::text) FROM consciousness.consciousness_checkpoints WHERE agent_id = 'alice'$$,
    $$SELECT t, id, h FROM alice_before$$,
    'every row of alice is exactly as before bob''s attempts');
SELECT is((SELECT count(*) FROM alice_before), 5::bigint, 'alice had five rows to protect');
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM nexus_memory.episode_embeddings WHERE agent_id = 'alice'),
             (SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = 'alice'),
             (SELECT sum(docs) FROM nexus_memory.text_stats WHERE agent_id = 'alice')$$,
    $$VALUES (1::bigint, 6::bigint, 3::numeric)$$,
    'alice''s vector, postings and statistics are all still there');

-- analysts read all agents' rows, but never a checkpoint's state
SET LOCAL ROLE nexus_ro;
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory), 3::bigint, 'nexus_ro sees every agent''s episodes');
SELECT is((SELECT count(DISTINCT agent_id) FROM consciousness.consciousness_checkpoints), 2::bigint,
          'nexus_ro sees that both agents have checkpoints');
SELECT is(ARRAY(SELECT DISTINCT agent_id FROM nexus_memory.text_postings ORDER BY 1), ARRAY['alice', 'bob'],
          'nexus_ro reads every agent''s postings');
SELECT throws_ok($$SELECT state FROM consciousness.consciousness_checkpoints$$, '42501', NULL,
                 'nexus_ro cannot read a checkpoint''s state');
RESET ROLE;

-- alice, for contrast, reads her own state
SET LOCAL ROLE alice;
SELECT is((SELECT state->>'mood' FROM consciousness.consciousness_checkpoints), 'alice', 'alice reads her own checkpoint');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
