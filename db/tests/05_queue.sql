-- The embedding queue: triggers, every state transition, leases, dead letters, stale results.
BEGIN;
SELECT plan(74);

SELECT tests.create_agent('alice');
CREATE TEMP VIEW q AS SELECT * FROM memory_system.embeddings_queue;
CREATE TEMP VIEW ep AS
SELECT e.*, x.embedding, x.model AS embedding_model, x.content_sha256 AS embedding_sha256
  FROM nexus_memory.zep_episodic_memory AS e
  LEFT JOIN nexus_memory.episode_embeddings AS x ON x.agent_id = e.agent_id AND x.episode_id = e.id;
-- workers may not create temp tables: they fill these
CREATE TEMP TABLE c1 AS SELECT * FROM memory_system.claim_batch('none', 1) WITH NO DATA;
CREATE TEMP TABLE c2 (LIKE c1); CREATE TEMP TABLE c3 (LIKE c1);
CREATE TEMP TABLE c4 (LIKE c1); CREATE TEMP TABLE c5 (LIKE c1);
GRANT ALL ON c1, c2, c3, c4, c5 TO PUBLIC;

-- enqueue by trigger ---------------------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('first');
RESET ROLE;
SELECT is((SELECT count(*) FROM q WHERE state = 'pending'), 1::bigint, 'an insert enqueues one pending item');
SELECT is((SELECT content_sha256 FROM q), (SELECT content_sha256 FROM ep), 'the item carries the content checksum');
SELECT is((SELECT model FROM q), memory_system._embedding_model(), 'the item targets the configured model');
SELECT is((SELECT source_table || ':' || agent_id FROM q), 'zep_episodic_memory:alice', 'the item names its source row and agent');
UPDATE memory_system.settings SET value = 'm1' WHERE name = 'embedding_model';
UPDATE memory_system.embeddings_queue SET model = 'm1';

SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('second'), ('third'), ('fourth');
INSERT INTO nexus_memory.semantic_memories (content) VALUES ('a fact');
UPDATE nexus_memory.zep_episodic_memory SET content = 'first' WHERE content = 'first';
UPDATE nexus_memory.zep_episodic_memory SET tags = '{x}' WHERE content = 'second';
RESET ROLE;
SELECT is((SELECT count(*) FROM q), 5::bigint, 'a multi-row insert enqueues each row; same content again or a tag change enqueues nothing');
SELECT is((SELECT count(*) FROM q WHERE source_table = 'semantic_memories'), 1::bigint, 'semantic memories are embedded too');

SET LOCAL ROLE alice;
UPDATE nexus_memory.zep_episodic_memory SET content = 'first, edited' WHERE content = 'first';
RESET ROLE;
SELECT is((SELECT count(*) FROM q), 5::bigint, 'changing content of a row with pending work adds no item');
SELECT is((SELECT q.content_sha256 FROM q JOIN ep ON ep.id = q.source_id AND q.source_table = 'zep_episodic_memory' WHERE ep.content = 'first, edited'),
          sha256('first, edited'::bytea), 'the pending item is superseded in place by the new checksum');

-- claim ----------------------------------------------------------------------------------------
SET LOCAL ROLE nexus_worker;
INSERT INTO c1 SELECT * FROM memory_system.claim_batch('w1', 2);
RESET ROLE;
SELECT is((SELECT count(*) FROM c1), 2::bigint, 'claim returns at most the batch size');
SELECT is((SELECT array_agg(content ORDER BY item_id) FROM c1), ARRAY['first, edited', 'second'],
          'claim returns the oldest items with their current content');
SELECT is((SELECT count(*) FROM q WHERE state = 'processing' AND lease_owner = 'w1' AND lease_expires_at > now()), 2::bigint,
          'claimed items are processing under a lease');
SET LOCAL ROLE nexus_worker;
INSERT INTO c2 SELECT * FROM memory_system.claim_batch('w2', 10);
RESET ROLE;
SELECT is((SELECT count(*) FROM c2 WHERE item_id IN (SELECT item_id FROM c1)), 0::bigint, 'a second claim gets none of the first''s items');
SELECT is((SELECT count(*) FROM c2), 3::bigint, 'the second claim gets the rest');

-- complete -------------------------------------------------------------------------------------
SET LOCAL ROLE nexus_worker;
SELECT results_eq(
    $$SELECT * FROM memory_system.complete_batch('w1', (SELECT array_agg(item_id ORDER BY item_id) FROM c1),
        ARRAY[tests.fake_vector(1), tests.fake_vector(2)], (SELECT array_agg(content_sha256 ORDER BY item_id) FROM c1), 'm1')$$,
    $$VALUES (2, 0, 0)$$, 'complete writes both vectors');
RESET ROLE;
SELECT is((SELECT count(*) FROM q WHERE state = 'done' AND processed_at IS NOT NULL AND lease_owner IS NULL), 2::bigint, 'completed items are done');
SELECT is((SELECT count(*) FROM ep WHERE embedding IS NOT NULL AND embedding_sha256 = content_sha256 AND embedding_model = 'm1'), 2::bigint,
          'the rows carry the vector, the model and the checksum it was computed from');

-- a result for content that changed meanwhile is refused
SET LOCAL ROLE alice;
UPDATE nexus_memory.zep_episodic_memory SET content = 'third, rewritten' WHERE content = 'third';
RESET ROLE;
SELECT is((SELECT count(*) FROM q WHERE state = 'pending'), 1::bigint, 'new content of a processing row queues new work');
SET LOCAL ROLE nexus_worker;
SELECT results_eq(
    $$SELECT * FROM memory_system.complete_batch('w2', (SELECT array_agg(item_id ORDER BY item_id) FROM c2),
        ARRAY[tests.fake_vector(3), tests.fake_vector(4), tests.fake_vector(5)], (SELECT array_agg(content_sha256 ORDER BY item_id) FROM c2), 'm1')$$,
    $$VALUES (2, 1, 0)$$, 'complete refuses the stale result and writes the others');
RESET ROLE;
SELECT ok((SELECT embedding IS NULL FROM ep WHERE content = 'third, rewritten'), 'a stale vector never lands on newer content');
SELECT is((SELECT count(*) FROM nexus_memory.semantic_memory_embeddings WHERE content_sha256 = sha256('a fact'::bytea)), 1::bigint,
          'a semantic memory gets its vector in its own table');
SELECT matches((SELECT last_error FROM q JOIN c2 ON c2.item_id = q.id WHERE c2.content = 'third'), '^stale', 'the stale item is closed with the reason');

-- back to content already embedded: nothing to do
SET LOCAL ROLE alice;
UPDATE nexus_memory.zep_episodic_memory SET content = 'second v2' WHERE content = 'second';
UPDATE nexus_memory.zep_episodic_memory SET content = 'second' WHERE content = 'second v2';
RESET ROLE;
SELECT is((SELECT count(*) FROM q JOIN ep ON ep.id = q.source_id AND q.source_table = 'zep_episodic_memory' WHERE ep.content = 'second' AND q.state = 'pending'), 0::bigint,
          'A -> B -> A leaves no pending work when A is embedded');

-- failures, backoff, dead letters --------------------------------------------------------------
DELETE FROM memory_system.embeddings_queue;
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('poison');
RESET ROLE;
CREATE TEMP TABLE states (n int, state text, retries int, delay interval);
GRANT ALL ON states TO PUBLIC;
DO $$
DECLARE
    v_item bigint;
BEGIN
    FOR i IN 1..5 LOOP
        UPDATE memory_system.embeddings_queue SET available_at = now() WHERE state = 'pending';
        SET LOCAL ROLE nexus_worker;
        SELECT item_id INTO v_item FROM memory_system.claim_batch('w1', 1);
        PERFORM memory_system.fail_item('w1', v_item, 'model exploded #' || i);
        RESET ROLE;
        INSERT INTO states SELECT i, state, retry_count, available_at - now() FROM memory_system.embeddings_queue WHERE id = v_item;
    END LOOP;
END
$$;
SELECT is((SELECT array_agg(state ORDER BY n) FROM states), ARRAY['pending', 'pending', 'pending', 'pending', 'dead'],
          'pending after each of 4 failures, dead after exactly 5');
SELECT is((SELECT array_agg(retries ORDER BY n) FROM states), ARRAY[1, 2, 3, 4, 5], 'each failure counts one retry');
SELECT is((SELECT array_agg(delay ORDER BY n) FROM states WHERE state = 'pending'),
          ARRAY['2 s', '4 s', '8 s', '16 s']::interval[], 'retries back off exponentially');
SELECT is((SELECT last_error FROM q), 'model exploded #5', 'a dead item keeps its last error');
SET LOCAL ROLE nexus_worker;
SELECT is((SELECT count(*) FROM memory_system.claim_batch('w1', 10)), 0::bigint, 'dead items are never claimed');
RESET ROLE;
SELECT is(memory_system.requeue_dead(), 1, 'requeue_dead puts it back');
SELECT is((SELECT state || ':' || retry_count FROM q), 'pending:0', 'as pending, with a fresh retry count');
SELECT is(memory_system.requeue_dead(), 0, 'nothing left to requeue');

-- leases ---------------------------------------------------------------------------------------
SET LOCAL ROLE nexus_worker;
INSERT INTO c3 SELECT * FROM memory_system.claim_batch('crashed', 1);
RESET ROLE;
UPDATE memory_system.embeddings_queue SET lease_expires_at = now() - interval '1 second' WHERE lease_owner = 'crashed';
SET LOCAL ROLE nexus_worker;
INSERT INTO c4 SELECT * FROM memory_system.claim_batch('rescuer', 1);
RESET ROLE;
SELECT is((SELECT item_id FROM c4), (SELECT item_id FROM c3), 'an expired lease is reclaimed by the next claim');
SELECT is((SELECT retry_count FROM c4), 1, 'an expired lease counts as a failed try');
SET LOCAL ROLE nexus_worker;
SELECT results_eq(
    $$SELECT * FROM memory_system.complete_batch('crashed', ARRAY[(SELECT item_id FROM c3)], ARRAY[tests.fake_vector(9)], ARRAY[(SELECT content_sha256 FROM c3)], 'm1')$$,
    $$VALUES (0, 0, 1)$$, 'the crashed worker''s late result is not its to write (lost)');
SELECT throws_ok($$SELECT memory_system.fail_item('crashed', (SELECT item_id FROM c3), 'late')$$, 'NX021', NULL,
                 'nor can it fail an item it no longer holds');
SELECT throws_ok($$UPDATE memory_system.embeddings_queue SET lease_expires_at = now() + interval '1 day'$$,
                 '42501', NULL, 'workers cannot write the queue table directly');
RESET ROLE;
UPDATE memory_system.embeddings_queue SET lease_expires_at = now() + interval '1 second' WHERE lease_owner = 'rescuer';
SET LOCAL ROLE nexus_worker;
SELECT is(memory_system.heartbeat('rescuer', interval '10 minutes', '{"pid": 1}'), 1, 'heartbeat extends the leases the worker holds');
RESET ROLE;
SELECT ok((SELECT lease_expires_at >= now() + interval '10 minutes' FROM q WHERE lease_owner = 'rescuer'), 'to now + the lease');
SELECT is((SELECT info->>'pid' FROM memory_system.worker_heartbeats WHERE worker_id = 'rescuer'), '1', 'and records the worker as alive');
SET LOCAL ROLE nexus_worker;
SELECT is(memory_system.release('rescuer'), 1, 'release on shutdown hands items back');
RESET ROLE;
SELECT is((SELECT state || ':' || retry_count FROM q), 'pending:1', 'released items are pending again, no failure counted');
SELECT isnt((SELECT stopped_at FROM memory_system.worker_heartbeats WHERE worker_id = 'rescuer'), NULL, 'the worker is marked stopped');

-- deletes, re-embedding, pruning, stats -------------------------------------------------------
SET LOCAL ROLE alice;
DELETE FROM nexus_memory.zep_episodic_memory WHERE content = 'poison';
RESET ROLE;
SELECT is((SELECT count(*) FROM q), 0::bigint, 'deleting a row removes its queue items');
SET LOCAL ROLE alice;
DELETE FROM nexus_memory.zep_episodic_memory WHERE content = 'second';
RESET ROLE;
SELECT is((SELECT count(*) FROM nexus_memory.episode_embeddings x
            WHERE NOT EXISTS (SELECT FROM nexus_memory.zep_episodic_memory e WHERE e.id = x.episode_id)), 0::bigint,
          'deleting an episode deletes its vector');

SELECT is(memory_system.reembed_all('m2'), (SELECT count(*) FROM ep) + 1, 'reembed_all queues every row (episodes and facts)');
SELECT is(memory_system._embedding_model(), 'm2', 'and switches the target model');
SELECT is((SELECT count(DISTINCT model) FROM q WHERE state = 'pending'), 1::bigint, 'all pending work targets the new model');
SELECT is(memory_system.reembed_all('m2'), (SELECT count(*) FROM ep) + 1, 're-running it adds no duplicate work');
SELECT is((SELECT count(*) FROM q), (SELECT count(*) FROM ep) + 1, 'still one item per row');

UPDATE memory_system.embeddings_queue SET state = 'done', processed_at = now() - interval '8 days'
 WHERE id IN (SELECT min(id) FROM memory_system.embeddings_queue);
SELECT is(memory_system.prune_done(), 1::bigint, 'prune_done removes done items past the retention');
SELECT is((SELECT pending FROM memory_system.queue_stats()), (SELECT count(*) FROM q WHERE state = 'pending'),
          'queue_stats counts pending items');
SELECT ok((SELECT oldest_pending_age >= interval '0' FROM memory_system.queue_stats()), 'and reports the oldest pending age');

-- bad input ------------------------------------------------------------------------------------
SET LOCAL ROLE nexus_worker;
SELECT throws_ok($$SELECT * FROM memory_system.claim_batch('w1', 0)$$, 'NX020', NULL, 'batch size 0 is refused');
SELECT throws_ok($$SELECT * FROM memory_system.claim_batch('w1', 1001)$$, 'NX020', NULL, 'batch size over 1000 is refused');
SELECT throws_ok($$SELECT * FROM memory_system.claim_batch('', 1)$$, 'NX020', NULL, 'an empty worker id is refused');
SELECT throws_ok($$SELECT * FROM memory_system.claim_batch('w1', 1, interval '0')$$, 'NX020', NULL, 'a zero lease is refused');
INSERT INTO c5 SELECT * FROM memory_system.claim_batch('w1', 1);
SELECT throws_ok($$SELECT * FROM memory_system.complete_batch('w1', ARRAY[(SELECT item_id FROM c5)], ARRAY['[1,2,3]'::vector], ARRAY[(SELECT content_sha256 FROM c5)], 'm2')$$,
                 'NX013', NULL, 'a vector of the wrong dimension is refused');
SELECT throws_ok($$SELECT * FROM memory_system.complete_batch('w1', ARRAY[(SELECT item_id FROM c5)], ARRAY[NULL::vector], ARRAY[(SELECT content_sha256 FROM c5)], 'm2')$$,
                 'NX013', NULL, 'a missing vector is refused');
SELECT throws_ok($$SELECT * FROM memory_system.complete_batch('w1', ARRAY[(SELECT item_id FROM c5), 0], ARRAY[tests.fake_vector()], ARRAY[(SELECT content_sha256 FROM c5)], 'm2')$$,
                 'NX020', NULL, 'arrays of different lengths are refused');
SELECT throws_ok($$SELECT * FROM memory_system.complete_batch('w1', ARRAY[(SELECT item_id FROM c5)], ARRAY[tests.fake_vector()], ARRAY[(SELECT content_sha256 FROM c5)], '')$$,
                 'NX020', NULL, 'an empty model name is refused');
SELECT throws_ok($$SELECT memory_system.fail_item('w1', -1, 'x')$$, 'NX021', NULL, 'failing an unknown item is refused');
SELECT throws_ok($$SELECT memory_system.heartbeat('w1', interval '1 minute', '[1]')$$, 'NX012', NULL, 'heartbeat info must be an object');
RESET ROLE;
SELECT is((SELECT state FROM q WHERE id = (SELECT item_id FROM c5)), 'processing', 'refused calls change nothing');

SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT * FROM memory_system.claim_batch('alice', 1)$$, '42501', NULL, 'agents cannot claim work');
RESET ROLE;
SELECT throws_ok($$SELECT memory_system.prune_done(interval '-1 day')$$, 'NX020', NULL, 'a negative retention is refused');

-- empty content, workers of one model, who did what ------------------------------------------
DELETE FROM memory_system.embeddings_queue;
UPDATE memory_system.settings SET value = 'm3' WHERE name = 'embedding_model';
-- whitespace-only content is refused at write (NX015) since 0011; a row from before can still
-- be queued: the check is lifted here to make one
ALTER TABLE nexus_memory.zep_episodic_memory DISABLE TRIGGER validate_row;
SET LOCAL ROLE alice;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('   '), ('model three');
RESET ROLE;
ALTER TABLE nexus_memory.zep_episodic_memory ENABLE TRIGGER validate_row;
SET LOCAL ROLE nexus_worker;
SELECT is((SELECT count(*) FROM memory_system.claim_batch('w9', 10, interval '5 minutes', 'other-model')), 0::bigint,
          'a worker of another model claims nothing');
DELETE FROM c5;
INSERT INTO c5 SELECT * FROM memory_system.claim_batch('w9', 10, interval '5 minutes', 'm3');
SELECT is((SELECT count(*) FROM c5), 2::bigint, 'a worker of the target model claims the items');
SELECT ok((SELECT bool_and(enqueued_at IS NOT NULL) FROM c5), 'claimed items say when they were enqueued');
SELECT is(memory_system.skip_batch('w9', (SELECT array_agg(item_id) FROM c5 WHERE btrim(content) = ''), 'empty content'), 1,
          'whitespace-only content is closed without a vector');
SELECT results_eq(
    $$SELECT * FROM memory_system.complete_batch('w9', (SELECT array_agg(item_id) FROM c5 WHERE content = 'model three'),
        ARRAY[tests.fake_vector(7)], (SELECT array_agg(content_sha256) FROM c5 WHERE content = 'model three'), 'm4', 'v4')$$,
    $$VALUES (0, 0, 1)$$, 'a vector of another model than the item asks for is not written');
SELECT results_eq(
    $$SELECT * FROM memory_system.complete_batch('w9', (SELECT array_agg(item_id) FROM c5 WHERE content = 'model three'),
        ARRAY[tests.fake_vector(7)], (SELECT array_agg(content_sha256) FROM c5 WHERE content = 'model three'), 'm3', 'v3')$$,
    $$VALUES (1, 0, 0)$$, 'the other item gets its vector');
SELECT throws_ok($$SELECT memory_system.skip_batch('w9', ARRAY[1], '')$$, 'NX020', NULL, 'skipping needs a reason');
RESET ROLE;
SELECT is((SELECT q.last_error FROM q JOIN ep ON ep.id = q.source_id AND q.source_table = 'zep_episodic_memory' WHERE ep.content = '   '),
          'no vector: empty content', 'the decision is recorded in the queue');
SELECT is((SELECT array_agg(DISTINCT state || ':' || processed_by) FROM q), ARRAY['done:w9'],
          'finished items record the worker that finished them');
SELECT is((SELECT x.model || '@' || x.model_version FROM nexus_memory.episode_embeddings AS x
             JOIN nexus_memory.zep_episodic_memory AS e ON e.agent_id = x.agent_id AND e.id = x.episode_id
            WHERE e.content = 'model three'), 'm3@v3', 'a vector records its model''s name and version');

SELECT * FROM finish();
ROLLBACK;
