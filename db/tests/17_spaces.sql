-- Spaces (docs/spaces.md): members, non-members, read-only members, a revoke in the middle of a
-- session, an owner that may grant and one that may not, drop, forged authors, and what never
-- reaches the catalogs or the Redis mirror. Two agents writing one space at once, a revoke over a
-- real login and the hostile-agent suite: tests/test_spaces.py and tests/test_isolation.py.
BEGIN;
SELECT plan(100);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');   -- writer
SELECT tests.create_agent('bob');     -- reader
SELECT tests.create_agent('carol');   -- in no space
SELECT tests.create_agent('dave');    -- the owner, who may grant
SELECT tests.create_agent('erin');    -- owner of a space it may not grant on

-- creating ---------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT memory_system.space_create('Team Space')$$, 'NX081', NULL, 'a space name is checked');
SELECT throws_ok($$SELECT memory_system.space_create('alice')$$, 'NX082', NULL,
                 'a space cannot take an agent''s name');
SELECT lives_ok($$SELECT memory_system.space_create('team', 'dave', true)$$, 'the operator creates a space');
SELECT lives_ok($$SELECT memory_system.space_create('solo', 'erin')$$, 'a space whose owner may not grant');
SELECT throws_ok($$SELECT memory_system.space_create('team')$$, 'NX082', NULL, 'a space name is taken once');
SELECT throws_ok($$SELECT memory_system.agent_add('team')$$, 'NX082', NULL, 'an agent cannot take a space''s name');
SELECT throws_ok($$SELECT memory_system.space_create('x', 'nobody')$$, 'NX002', NULL, 'the owner must be an agent');
SELECT throws_ok($$SELECT memory_system.space_create('x', NULL, true)$$, 'NX085', NULL,
                 'owner_may_grant needs an owner');
SELECT throws_ok($$SELECT memory_system.space_grant('team', 'alice', 'admin')$$, 'NX085', NULL,
                 'rights are read or write');
SELECT throws_ok($$SELECT memory_system.space_grant('team', 'nobody', 'read')$$, 'NX002', NULL,
                 'a grant names an agent');
SELECT throws_ok($$SELECT memory_system.space_grant('nope', 'alice', 'read')$$, 'NX080', NULL,
                 'a grant names a space');
SELECT memory_system.space_grant('team', 'alice', 'write');
SELECT memory_system.space_grant('team', 'bob', 'read');

CREATE TEMP TABLE sp AS SELECT space_id, reader_role, writer_role FROM memory_system.spaces WHERE name = 'team';
GRANT SELECT ON sp TO PUBLIC;
CREATE FUNCTION pg_temp.sid() RETURNS text LANGUAGE sql STABLE AS $$ SELECT space_id FROM sp $$;
SELECT matches(pg_temp.sid(), '^space_[0-9a-f]{16}$', 'a space''s id is opaque');
-- (roles are cluster-wide: other tests' agents may be called teammate)
SELECT is_empty($$SELECT name FROM memory_system.spaces
                   WHERE strpos(reader_role, name) > 0 OR strpos(writer_role, name) > 0 OR strpos(space_id, name) > 0$$,
                'no role or id of a space carries its name');
SELECT is_empty($$SELECT c.relname FROM pg_class AS c WHERE c.relname ~ 'team|solo'
                  OR obj_description(c.oid, 'pg_class') ~ 'team|solo'$$,
                'no relation or comment of the catalogs names a space');
SELECT is((SELECT count(*) FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
            WHERE pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%L)', pg_temp.sid())),
          3::bigint, 'a space has a vector partition (and an HNSW graph) of each vector table');
SELECT is(ARRAY(SELECT agent_id || ':' || rights || ':' || may_grant FROM memory_system.space_members('team')),
          ARRAY['alice:write:false', 'bob:read:false', 'dave:write:true'], 'space_members lists rights');
SELECT is((SELECT readers || '/' || writers FROM memory_system.space_list() WHERE name = 'team'), '1/2',
          'space_list counts readers and writers');
SELECT is(ARRAY(SELECT memory_system.cache_agents()), ARRAY['alice', 'bob', 'carol', 'dave', 'erin'],
          'the Redis mirror''s agents are agents, not spaces');

-- writing ----------------------------------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT ok(nexus.record_episode('the walrus invoice is overdue', session => 's1', space => 'team') > 0,
          'a writer records an episode in the space');
SELECT nexus.record_episode('alice private walrus note');
SELECT ok(nexus.remember_fact('the plan is to wait', key => 'plan', space => 'team') > 0,
          'a writer remembers a keyed fact in the space');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content, author)
                   VALUES (pg_temp.sid(), 'forged', 'bob')$$, '42501', NULL,
                 'nobody writes the author column (forging one is refused)');
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES (pg_temp.sid(), 'direct walrus')$$,
                'a writer may insert into the space directly (row-level security checks it)');
SELECT throws_ok($$UPDATE nexus_memory.zep_episodic_memory SET author = 'bob'$$, '42501', NULL,
                 'nobody updates the author column');
SELECT throws_ok($$INSERT INTO nexus_memory.working_memory_contexts (agent_id, context_key, value)
                   VALUES (pg_temp.sid(), 'k', '{}')$$, '42501', NULL, 'working memory stays private: no space''s');
SELECT throws_ok($$INSERT INTO consciousness.consciousness_checkpoints (agent_id, state) VALUES (pg_temp.sid(), '{}')$$,
                 '42501', NULL, 'checkpoints stay private: no space''s');
SELECT isnt(nexus.store_put('{notes}', 'n1', '{"v": 1}', texts => '{"content": "the ledger of tusks"}', space => 'team'),
            NULL, 'a writer puts a store item in the space');
RESET ROLE;
SET LOCAL ROLE alice;
SELECT isnt(nexus.update_episode((SELECT max(id) FROM nexus.recent_episodes(space => 'team')), tags => '{edited}'), NULL,
            'a writer updates a space''s episode');
RESET ROLE;
SELECT is(ARRAY(SELECT DISTINCT author FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()),
          ARRAY['alice'], 'every space row written by alice has alice as author');

SET LOCAL ROLE dave;
SELECT nexus.remember_fact('the plan is to ship', key => 'plan', space => 'team');
RESET ROLE;
SELECT is(ARRAY(SELECT content || ':' || author FROM nexus_memory.semantic_memories
                 WHERE agent_id = pg_temp.sid() AND fact_key = 'plan' AND valid_to IS NULL),
          ARRAY['the plan is to ship:dave'], 'one current fact per key per space, whichever member wrote it');
SELECT is((SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = pg_temp.sid() AND fact_key = 'plan'),
          2::bigint, 'the replaced one stays in the space''s history');
-- a space's facts by key: the current one and its history, for any member; a non-member gets NX080
SET LOCAL ROLE bob;
SELECT is(ARRAY(SELECT content FROM nexus.get_fact(key => 'plan', space => 'team')), ARRAY['the plan is to ship'],
          'a reader gets the space''s current fact of a key');
SELECT is(ARRAY(SELECT content FROM nexus.fact_history(key => 'plan', space => 'team')),
          ARRAY['the plan is to wait', 'the plan is to ship'], 'and the key''s history in the space, oldest first');
SELECT is((SELECT count(*) FROM nexus.get_fact(key => 'plan')), 0::bigint, 'his own memory has no such fact');
RESET ROLE;
SET LOCAL ROLE carol;
SELECT throws_ok($$SELECT * FROM nexus.fact_history(key => 'plan', space => 'team')$$, 'NX080', NULL,
                 'a non-member reads no fact of the space: the error of no such space');
RESET ROLE;

-- the same error for a read-only member, a non-member and no such space --------------------------
SET LOCAL ROLE bob;
SELECT throws_ok($$SELECT nexus.record_episode('x', space => 'team')$$, 'NX080', NULL, 'a reader may not write');
SELECT throws_ok($$SELECT nexus.remember_fact('x', space => 'team')$$, 'NX080', NULL, 'a reader may not remember a fact there');
SELECT throws_ok($$SELECT nexus.record_episode('x', space => 'nope')$$, 'NX080', NULL, 'no such space: the same error');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES (pg_temp.sid(), 'x')$$,
                 '42501', NULL, 'a reader may not insert directly');
SELECT is(tests.affected($$UPDATE nexus_memory.zep_episodic_memory SET content = 'hacked' WHERE agent_id = pg_temp.sid()$$),
          0::bigint, 'a reader updates no space row');
SELECT is(tests.affected($$DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()$$),
          0::bigint, 'a reader deletes no space row');
SELECT is(tests.affected($$DELETE FROM nexus_memory.semantic_memories WHERE agent_id = pg_temp.sid()$$),
          0::bigint, 'a reader deletes no space fact');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()), 2::bigint,
          'a reader reads the space''s episodes');
SELECT is((SELECT content FROM nexus.get_episode((SELECT min(id) FROM nexus.recent_episodes(space => 'team')))),
          'the walrus invoice is overdue', 'a reader gets a space''s episode by its id');
SELECT throws_ok(format('SELECT nexus.update_episode(%s, content => %L)',
                        (SELECT min(id) FROM nexus.recent_episodes(space => 'team')), 'hacked'),
                 'NX033', NULL, 'but may not update it');
SELECT is(nexus.delete_episode((SELECT min(id) FROM nexus.recent_episodes(space => 'team'))), false, 'nor delete it');
SELECT is(ARRAY(SELECT content || ':' || author FROM nexus.recent_episodes(space => 'team') ORDER BY content),
          ARRAY['direct walrus:alice', 'the walrus invoice is overdue:alice'], 'recent_episodes of a space, with authors');
SELECT is(ARRAY(SELECT coalesce(space, '-') || ':' || author || ':' || content
                  FROM nexus.memory_search('walrus', spaces => '{team}') ORDER BY content),
          ARRAY['team:alice:direct walrus', 'team:alice:the walrus invoice is overdue'],
          'memory_search over a space: each hit with its space and author (bob has no walrus of his own)');
SELECT is((SELECT count(*) FROM nexus.memory_search('walrus', scope => 'all')), 2::bigint, 'scope all finds them too');
SELECT is((SELECT count(*) FROM nexus.memory_search('walrus')), 0::bigint, 'by default only the caller''s own memory');
SELECT is(ARRAY(SELECT space || ':' || rights || ':' || may_grant FROM nexus.spaces()), ARRAY['team:read:false'],
          'nexus.spaces(): bob''s spaces and rights, not the ones he is not in');
SELECT throws_ok($$SELECT nexus.space_grant('team', 'carol', 'read')$$, 'NX083', NULL, 'a member that is not the owner may not grant');
SELECT is((SELECT value FROM nexus.store_get('{notes}', 'n1', space => 'team')), '{"v": 1}'::jsonb,
          'a reader gets an item of the space''s store');
SELECT is(ARRAY(SELECT key FROM nexus.store_search('{notes}', 'ledger tusks', space => 'team')), ARRAY['n1'],
          'and finds it by store_search in the space');
SELECT is(ARRAY(SELECT namespace::text FROM nexus.store_list_namespaces(space => 'team')), ARRAY['{notes}'],
          'store_list_namespaces of the space');
SELECT is((SELECT count(*) FROM nexus.store_get('{notes}', 'n1')), 0::bigint, 'his own store has no such item');
SELECT is((SELECT total || '/' || pending FROM nexus.memory_stats(space => 'team') WHERE kind = 'episode'), '2/2',
          'memory_stats of a space: its episodes and their queue items');
SELECT is((SELECT total FROM nexus.memory_stats() WHERE kind = 'episode'), 0::bigint, 'and of his own memory, none');
SELECT throws_ok($$SELECT nexus.store_put('{notes}', 'n2', '{}', space => 'team')$$, 'NX080', NULL, 'a reader may not put');
SELECT throws_ok($$SELECT nexus.store_delete('{notes}', 'n1', space => 'team')$$, 'NX080', NULL, 'nor delete');
RESET ROLE;

SET LOCAL ROLE alice;
SELECT is(ARRAY(SELECT coalesce(space, 'own') || ':' || content FROM nexus.memory_search('walrus', scope => 'all') ORDER BY content),
          ARRAY['own:alice private walrus note', 'team:direct walrus', 'team:the walrus invoice is overdue'],
          'scope all: own memory and the space''s, fused');
SELECT is(ARRAY(SELECT content FROM nexus.memory_search('walrus', spaces => '{team}', scope => 'spaces') ORDER BY content),
          ARRAY['direct walrus', 'the walrus invoice is overdue'], 'scope spaces: the space alone');
SELECT is(ARRAY(SELECT jsonb_array_length(neighbours) FROM nexus.memory_search('invoice', spaces => '{team}', context => 2)
                 WHERE session_id = 's1'), ARRAY[NULL::integer], 'context works in a space (a lone episode has no neighbours)');
RESET ROLE;

-- a non-member -----------------------------------------------------------------------------------
SET LOCAL ROLE carol;
SELECT throws_ok($$SELECT * FROM nexus.recent_episodes(space => 'team')$$, 'NX080', NULL, 'a non-member lists nothing');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('walrus', spaces => '{team}')$$, 'NX080', NULL,
                 'a non-member searches nothing: the same error as no such space');
SELECT throws_ok($$SELECT * FROM nexus.memory_search('walrus', spaces => '{nope}')$$, 'NX080', NULL, 'no such space');
SELECT throws_ok($$SELECT * FROM nexus.store_get('{notes}', 'n1', space => 'team')$$, 'NX080', NULL,
                 'a non-member gets no store item of the space');
SELECT throws_ok($$SELECT * FROM nexus.store_search('{notes}', 'ledger', space => 'team')$$, 'NX080', NULL,
                 'nor searches its store');
SELECT throws_ok($$SELECT * FROM nexus.memory_stats(space => 'team')$$, 'NX080', NULL, 'nor counts its memories');
SELECT is((SELECT count(*) FROM nexus.memory_search('walrus', scope => 'all')), 0::bigint, 'scope all: none of the space');
SELECT is((SELECT count(*) FROM nexus.text_candidates('walrus', agent_ids => ARRAY[pg_temp.sid()])), 0::bigint,
          'a non-member naming the space''s id to text_candidates finds nothing');
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid())
          + (SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = pg_temp.sid())
          + (SELECT count(*) FROM nexus_memory.text_postings WHERE agent_id = pg_temp.sid())
          + (SELECT count(*) FROM nexus_memory.text_stats WHERE agent_id = pg_temp.sid()), 0::bigint,
          'a non-member reads no row of the space in any table');
SELECT is((SELECT count(*) FROM memory_system.spaces), 0::bigint, 'a non-member sees no space (nor its name)');
SELECT is((SELECT count(*) FROM nexus.spaces()), 0::bigint, 'nexus.spaces() is empty for a non-member');
SELECT throws_ok($$SELECT nexus.space_grant('team', 'carol', 'read')$$, 'NX080', NULL,
                 'a non-member may not grant itself anything (and learns nothing)');
RESET ROLE;

-- the owner grants, a revoke holds at the next statement ------------------------------------------
SET LOCAL ROLE dave;
SELECT lives_ok($$SELECT nexus.space_grant('team', 'carol', 'read')$$, 'the owner may grant, where the operator allowed it');
SELECT throws_ok($$SELECT nexus.space_grant('team', 'dave', 'write')$$, 'NX083', NULL, 'not to itself');
RESET ROLE;
SET LOCAL ROLE carol;
SELECT is((SELECT count(*) FROM nexus.recent_episodes(space => 'team')), 2::bigint, 'carol reads once granted');
RESET ROLE;
SET LOCAL ROLE dave;
SELECT lives_ok($$SELECT nexus.space_revoke('team', 'carol')$$, 'the owner revokes what it granted');
RESET ROLE;
SET LOCAL ROLE carol;
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()), 0::bigint,
          'revoked by the owner: nothing at the next statement');
RESET ROLE;
SET LOCAL ROLE erin;
SELECT throws_ok($$SELECT nexus.space_grant('solo', 'carol', 'read')$$, 'NX083', NULL,
                 'an owner the operator did not allow to grant may not');
RESET ROLE;

SET LOCAL ROLE bob;
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()), 2::bigint,
          'bob reads the space');
RESET ROLE;
SELECT memory_system.space_revoke('team', 'bob');
SET LOCAL ROLE bob;
SELECT is((SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = pg_temp.sid()), 0::bigint,
          'revoked: his next statement, in the same transaction, reads nothing of it');
SELECT throws_ok($$SELECT * FROM nexus.recent_episodes(space => 'team')$$, 'NX080', NULL, 'and the API says no such space');
RESET ROLE;
SELECT memory_system.space_grant('team', 'alice', 'read');
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT nexus.record_episode('x', space => 'team')$$, 'NX080', NULL, 'write taken back: read only now');
SELECT is((SELECT count(*) FROM nexus.recent_episodes(space => 'team')), 2::bigint, 'but still a reader');
RESET ROLE;

-- vectors: a space's own partition, searched with the caller's ------------------------------------
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT agent_id, id, memory_system._embedding_model(), content_sha256, tests.fake_vector(1)
  FROM nexus_memory.zep_episodic_memory WHERE agent_id IN (pg_temp.sid(), 'alice');
SET LOCAL ROLE alice;
SELECT is((SELECT count(*) FROM nexus.memory_search(query_embedding => tests.fake_vector(1), scope => 'all')), 3::bigint,
          'the vector branch searches own and space partitions');
RESET ROLE;
SELECT is((SELECT count(*) FROM memory_system.cache_recent_episodes(ARRAY[pg_temp.sid()]) WHERE episodes IS NOT NULL), 0::bigint,
          'the Redis mirror never reads a space''s episodes');
SELECT throws_ok(format('SELECT memory_system.agent_remove(%L)', pg_temp.sid()), 'NX002', NULL,
                 'a space is not an agent to remove');

-- a space whose roles are missing (restored into another cluster): no member, and no error --------
SELECT memory_system.space_create('ghost');
SELECT memory_system.space_grant('ghost', 'erin', 'read');
DO $$ BEGIN EXECUTE format('DROP ROLE %I', (SELECT reader_role FROM memory_system.spaces WHERE name = 'ghost')); END $$;
SET LOCAL ROLE erin;
SELECT lives_ok($$SELECT count(*) FROM nexus_memory.zep_episodic_memory$$, 'a missing space role raises no error');
SELECT is(ARRAY(SELECT space FROM nexus.spaces()), ARRAY['solo']::text[], 'and makes nobody a member of that space');
RESET ROLE;

-- an owner removed: its role goes (no membership keeps it), what it granted stays -------------------
SELECT tests.create_agent('fred');
SELECT memory_system.space_create('fredspace', 'fred', true);
SET LOCAL ROLE fred;
SELECT nexus.space_grant('fredspace', 'erin', 'read');
RESET ROLE;
SELECT memory_system.agent_remove('fred', true);
SELECT is_empty($$SELECT 1 FROM pg_roles WHERE rolname = 'fred'$$, 'a removed owner''s role is dropped, not kept by its grants');
SELECT is(ARRAY(SELECT agent_id || ':' || rights FROM memory_system.space_members('fredspace')), ARRAY['erin:read'],
          'the rights it granted stay with their members');
SELECT is((SELECT owner FROM memory_system.spaces WHERE name = 'fredspace'), NULL, 'the space has no owner then');

-- drop -------------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT memory_system.space_drop('team')$$, 'NX084', NULL, 'a space with members is not dropped without the flag');
SELECT is(memory_system.space_drop('team', true), 5::bigint, 'dropped with its memories (2 episodes, 2 facts, a store item)');
SELECT is_empty(format('SELECT 1 FROM memory_system.agents WHERE agent_id = %L', pg_temp.sid()), 'its id is gone');
SELECT is_empty(format('SELECT 1 FROM pg_roles WHERE rolname IN (%L, %L)', (SELECT reader_role FROM sp), (SELECT writer_role FROM sp)),
                'its roles are gone');
SELECT is_empty(format('SELECT 1 FROM nexus_memory.episode_embeddings WHERE agent_id = %L', pg_temp.sid()),
                'its vectors and partitions are gone');
SELECT throws_ok($$SELECT memory_system.space_drop('solo')$$, 'NX084', NULL, 'its owner is a member too');
SELECT memory_system.space_revoke('solo', 'erin');
SELECT is(memory_system.space_drop('solo'), 0::bigint, 'an empty space without members is dropped without the flag');

SELECT * FROM finish();
ROLLBACK;
