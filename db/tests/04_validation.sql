-- Bad input gets our own SQLSTATE (NX…), raised by the validation triggers and the agent
-- admin functions; valid input goes through. Writes run as the agent where an agent would make
-- them, so the checks are also proven executable by agents.
BEGIN;
SELECT plan(85);
SET LOCAL client_min_messages = warning;

SELECT is(tests.create_agent('alice'), 'alice', 'alice is registered as an agent');

-- NX001: not a registered agent --------------------------------------------------------------
SELECT throws_ok('SELECT nexus.current_agent()', 'NX001', NULL,
                 'nexus.current_agent() as a role that is not an agent');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES ('ghost', 'x')$$,
                 'NX001', NULL, 'an episode of an unregistered agent');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('x')$$,
                 'NX001', NULL, 'an episode defaulting to the calling role, which is not an agent');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (agent_id, content) VALUES ('ghost', 'x')$$,
                 'NX001', NULL, 'a semantic memory of an unregistered agent');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (agent_id, context_key, value)
                   VALUES ('ghost', 'k', '{}')$$,
                 'NX001', NULL, 'working memory of an unregistered agent');
SELECT throws_ok($$INSERT INTO consciousness.consciousness_checkpoints (agent_id, state) VALUES ('ghost', '{}')$$,
                 'NX001', NULL, 'a checkpoint of an unregistered agent');
SELECT throws_ok($$INSERT INTO consciousness.distributed_consensus (consensus_key, value, updated_by)
                   VALUES ('k', '{}', 'ghost')$$,
                 'NX001', NULL, 'a consensus key written by an unregistered agent');

SET LOCAL ROLE alice;
SELECT is(nexus.current_agent(), 'alice', 'nexus.current_agent() as an agent is that agent');

-- NX011: payload too large -------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (repeat('x', 262145))$$,
                 'NX011', NULL, 'episode content over 256 KiB');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (repeat('é', 131073))$$,
                 'NX011', NULL, 'episode content over 256 KiB in bytes (131073 two-byte characters)');
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES (repeat('x', 262144))$$,
                'episode content of exactly 256 KiB is accepted');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content) VALUES (repeat('x', 262145))$$,
                 'NX011', NULL, 'semantic memory content over 256 KiB');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content, metadata)
                   VALUES ('x', jsonb_build_object('k', repeat('x', 65536)))$$,
                 'NX011', NULL, 'episode metadata over 64 KiB');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, metadata)
                   VALUES ('x', jsonb_build_object('k', repeat('x', 65536)))$$,
                 'NX011', NULL, 'semantic memory metadata over 64 KiB');
SELECT throws_ok($$INSERT INTO consciousness.consciousness_checkpoints (state, metadata)
                   VALUES ('{}', jsonb_build_object('k', repeat('x', 65536)))$$,
                 'NX011', NULL, 'checkpoint metadata over 64 KiB');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (context_key, value)
                   VALUES ('k', jsonb_build_object('v', repeat('x', 262144)))$$,
                 'NX011', NULL, 'working memory value over 256 KiB');
SELECT throws_ok($$INSERT INTO consciousness.distributed_consensus (consensus_key, value)
                   VALUES ('k', jsonb_build_object('v', repeat('x', 262144)))$$,
                 'NX011', NULL, 'consensus value over 256 KiB');

-- NX012: metadata must be a JSON object ------------------------------------------------------
SELECT throws_ok(format($$INSERT INTO nexus_memory.zep_episodic_memory (content, metadata) VALUES ('x', %L)$$, m),
                 'NX012', NULL, format('episode metadata %s', m))
  FROM unnest(ARRAY['[1,2]', '"a string"', 'null']) AS m;
SELECT throws_ok(format($$INSERT INTO nexus_memory.semantic_memories (content, metadata) VALUES ('x', %L)$$, m),
                 'NX012', NULL, format('semantic memory metadata %s', m))
  FROM unnest(ARRAY['[1,2]', '"a string"', 'null']) AS m;
SELECT throws_ok(format($$INSERT INTO consciousness.consciousness_checkpoints (state, metadata) VALUES ('{}', %L)$$, m),
                 'NX012', NULL, format('checkpoint metadata %s', m))
  FROM unnest(ARRAY['[1,2]', '"a string"', 'null']) AS m;

-- NX015: invalid field values ----------------------------------------------------------------
SELECT throws_ok(format('INSERT INTO nexus_memory.%I (content, importance) VALUES (%L, %s)', t, 'x', i),
                 'NX015', NULL, format('%s importance %s', t, i))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories']) AS t
 CROSS JOIN unnest(ARRAY['1.5', '-0.1', 'NULL']) AS i;
SELECT throws_ok(format('INSERT INTO nexus_memory.%I (content, tags) VALUES (%L, %L)', t, 'x', tags),
                 'NX015', NULL, format('%s: %s', t, what))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories']) AS t
 CROSS JOIN (VALUES
    ('65 tags', array_fill('tag'::text, ARRAY[65])),
    ('a NULL tag', ARRAY['ok', NULL]),
    ('an empty tag', ARRAY['ok', '']),
    ('a tag of 65 characters', ARRAY[repeat('t', 65)])
 ) AS v (what, tags);
-- content with nothing in it: refused by every path (direct DML and the API functions)
SELECT throws_ok(format('INSERT INTO nexus_memory.%I (content) VALUES (%L)', t, c),
                 'NX015', NULL, format('%s content %s', t, quote_literal(c)))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories']) AS t
 CROSS JOIN unnest(ARRAY['', E' \n\t ']) AS c;
SELECT throws_ok($$SELECT nexus.update_episode(nexus.record_episode('soon emptied'), content => '   ')$$,
                 'NX015', NULL, 'update_episode to whitespace-only content');
SELECT throws_ok($$SELECT nexus.remember_fact(E'\n')$$, 'NX015', NULL, 'remember_fact of a newline');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (context_key, value) VALUES ('', '{}')$$,
                 'NX015', NULL, 'an empty working memory context key');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (context_key, value)
                   VALUES (repeat('k', 257), '{}')$$,
                 'NX015', NULL, 'a working memory context key of 257 characters');
SELECT throws_ok($$INSERT INTO consciousness.distributed_consensus (consensus_key, value) VALUES ('', '{}')$$,
                 'NX015', NULL, 'an empty consensus key');
SELECT throws_ok($$INSERT INTO consciousness.consciousness_checkpoints (checkpoint_name, state) VALUES ('', '{}')$$,
                 'NX015', NULL, 'an empty checkpoint name');

-- valid input goes through -------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content, metadata, tags, importance, session_id)
                  VALUES ('The quick brown fox jumps over the lazy dog', '{"lang": "en"}',
                          array_fill('tag'::text, ARRAY[64]), 1, 's1')$$,
                'an episode at the limits (64 tags, importance 1) is accepted');
SELECT lives_ok($$INSERT INTO nexus_memory.semantic_memories (content, tags, importance)
                  VALUES ('foxes jump', ARRAY[repeat('t', 64)], 0)$$,
                'a semantic memory at the limits (64-character tag, importance 0) is accepted');
SELECT lives_ok($$INSERT INTO nexus_memory.working_memory_contexts (context_key, value, expires_at)
                  VALUES (repeat('k', 256), '{"step": 1}', now() + interval '1 hour')$$,
                'working memory with a 256-character key is accepted');
SELECT lives_ok($$INSERT INTO consciousness.consciousness_checkpoints (checkpoint_name, state)
                  VALUES ('boot', '{"mood": "curious"}')$$,
                'a checkpoint is accepted');
SELECT lives_ok($$INSERT INTO consciousness.distributed_consensus (consensus_key, value) VALUES ('leader', '{"id": 1}')$$,
                'a consensus key is accepted');
SELECT lives_ok($$UPDATE consciousness.distributed_consensus SET value = '{"id": 2}', version = version + 1
                   WHERE consensus_key = 'leader'$$,
                'a consensus key is updated');
RESET ROLE;

SELECT results_eq(
    $$SELECT agent_id, content_sha256 = sha256(convert_to(content, 'UTF8')),
             content_tsv @@ to_tsquery('english', 'fox & jump')
        FROM nexus_memory.zep_episodic_memory WHERE session_id = 's1'$$,
    $$VALUES ('alice'::text, true, true)$$,
    'an agent''s episode gets agent_id = the agent, the checksum of its content, its search vector');
SELECT is((SELECT updated_by FROM consciousness.distributed_consensus WHERE consensus_key = 'leader'),
          'alice', 'a consensus write is signed by the agent');
SELECT is((SELECT version FROM consciousness.distributed_consensus WHERE consensus_key = 'leader'),
          2::bigint, 'each update of a consensus key is a new version');

-- an update of the content stamps updated_at
UPDATE nexus_memory.zep_episodic_memory SET updated_at = '2000-01-01' WHERE session_id = 's1';
SET LOCAL ROLE alice;
UPDATE nexus_memory.zep_episodic_memory SET content = 'The fox sleeps' WHERE session_id = 's1';
RESET ROLE;
SELECT cmp_ok((SELECT updated_at FROM nexus_memory.zep_episodic_memory WHERE session_id = 's1'),
              '>', '2000-01-01'::timestamptz, 'updating the content of an episode stamps updated_at');
SELECT ok((SELECT content_sha256 = sha256(convert_to('The fox sleeps', 'UTF8'))
             FROM nexus_memory.zep_episodic_memory WHERE session_id = 's1'),
          'updating the content of an episode recomputes its checksum');

-- content is text: any characters, backslashes included, are accepted and checksummed as bytes
SET LOCAL ROLE alice;
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content, session_id)
                  VALUES ('saved to C:\temp\notes.txt', 's2')$$,
                'an episode whose content has a backslash is accepted');
SELECT lives_ok($$INSERT INTO nexus_memory.semantic_memories (content) VALUES ('A'), ('\x41')$$,
                'the facts ''A'' and ''\x41'' are two different facts');
-- the content limit (256 KiB) keeps the full-text vector under its 1 MB limit, even for the
-- worst case: as many distinct short words as fit
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content)
                  SELECT left(string_agg(substr(md5(i::text), 1, 4), ' '), 262144)
                    FROM generate_series(1, 60000) AS i$$,
                'an episode of 256 KiB of distinct 4-character words is accepted');
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content)
                  SELECT left(string_agg(substr(md5(i::text), 1, 7), ' '), 262144)
                    FROM generate_series(1, 40000) AS i$$,
                'an episode of 256 KiB of distinct 7-character words is accepted');
RESET ROLE;

-- agent administration -----------------------------------------------------------------------
SELECT throws_ok(format('SELECT memory_system.agent_add(%L)', n), 'NX003', NULL,
                 format('agent_add(%L): invalid name', n))
  FROM unnest(ARRAY['Bad-Name', 'nexus_x', 'pg_x', '1abc', '', repeat('a', 64)]) AS n;
SELECT throws_ok('SELECT memory_system.agent_add(NULL)', 'NX003', NULL, 'agent_add(NULL): invalid name');
SELECT throws_ok($$SELECT memory_system.agent_add('alice')$$, 'NX004', NULL,
                 'agent_add of an existing agent');
CREATE ROLE plainrole NOLOGIN;
SELECT throws_ok($$SELECT memory_system.agent_add('plainrole')$$, 'NX004', NULL,
                 'agent_add of a name taken by a role that is not an agent');
SELECT throws_ok($$SELECT memory_system.agent_remove('ghost')$$, 'NX002', NULL,
                 'agent_remove of an unknown agent');
SELECT throws_ok($$SELECT memory_system.agent_grant('alice', 'no_such_role')$$, 'NX002', NULL,
                 'agent_grant to an unknown role');
SELECT throws_ok($$SELECT memory_system.agent_grant('ghost', 'nexus_app')$$, 'NX002', NULL,
                 'agent_grant of an unknown agent');
SELECT throws_ok($$SELECT memory_system.agent_revoke('ghost', 'nexus_app')$$, 'NX002', NULL,
                 'agent_revoke of an unknown agent');

-- removing an agent with memories needs p_delete_memories, which deletes and counts them
SELECT is(tests.create_agent('carol'), 'carol', 'carol is registered as an agent');
SET LOCAL ROLE carol;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('carol one'), ('carol two');
INSERT INTO nexus_memory.semantic_memories (content) VALUES ('carol fact');
INSERT INTO nexus_memory.working_memory_contexts (context_key, value) VALUES ('k', '{}');
INSERT INTO consciousness.consciousness_checkpoints (state) VALUES ('{}');
RESET ROLE;
SELECT throws_ok($$SELECT memory_system.agent_remove('carol')$$, 'NX005', NULL,
                 'agent_remove of an agent with memories');
SELECT is(memory_system.agent_remove('carol', p_delete_memories => true), 5::bigint,
          'agent_remove with p_delete_memories returns the number of memory rows deleted');
SELECT is_empty($$SELECT FROM memory_system.agents WHERE agent_id = 'carol'$$,
                'the removed agent is no longer registered');
SELECT hasnt_role('carol', 'the removed agent''s role is dropped');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = 'alice') > 0, true,
          'removing an agent leaves other agents'' memories alone');

SELECT * FROM finish();
ROLLBACK;
