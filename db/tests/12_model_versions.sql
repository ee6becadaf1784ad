-- Vectors of two precisions of one model (model versions '... 0.1.0' and '... 0.1.0+bf16'):
-- memory_stats shows the mix, reembed_all with a version queues what is of the other one.
BEGIN;
SELECT plan(11);

SELECT tests.create_agent('vera');
SET LOCAL ROLE vera;
INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('one'), ('two'), ('three');
INSERT INTO nexus_memory.semantic_memories (content) VALUES ('a fact');
SELECT nexus.store_put('{notes}', 'k', '{"t": "a note"}', '{"t": "a note"}');
RESET ROLE;
-- a worker in fp32 embeds two episodes, the fact and the store text, one in bf16 the third episode
CREATE TEMP TABLE c (worker text, version text, item_id bigint, content_sha256 bytea);
CREATE FUNCTION pg_temp.work(p_worker text, p_version text, p_n integer) RETURNS integer
LANGUAGE sql AS $$
    DELETE FROM c WHERE worker = p_worker;
    INSERT INTO c SELECT p_worker, p_version, item_id, content_sha256
      FROM memory_system.claim_batch(p_worker, p_n);
    SELECT written FROM memory_system.complete_batch(
        p_worker, ARRAY(SELECT item_id FROM c WHERE worker = p_worker ORDER BY item_id),
        ARRAY(SELECT tests.fake_vector(item_id) FROM c WHERE worker = p_worker ORDER BY item_id),
        ARRAY(SELECT content_sha256 FROM c WHERE worker = p_worker ORDER BY item_id),
        memory_system._embedding_model(), p_version);
$$;
SELECT is(pg_temp.work('w32', 'pkg 0.1.0', 2), 2, 'an fp32 worker writes two episodes');
SELECT is(pg_temp.work('w16', 'pkg 0.1.0+bf16', 1), 1, 'a bf16 worker writes the third');
SELECT is(pg_temp.work('w32', 'pkg 0.1.0', 1), 1, 'the fp32 worker writes the fact');
SELECT is(pg_temp.work('w32', 'pkg 0.1.0', 1), 1, 'and the store text');

SET LOCAL ROLE vera;
SELECT results_eq(
    $$SELECT kind, embedded, model_versions FROM nexus.memory_stats() ORDER BY kind$$,
    $$VALUES ('checkpoint', NULL::bigint, NULL::jsonb),
             ('episode', 3, '{"pkg 0.1.0": 2, "pkg 0.1.0+bf16": 1}'::jsonb),
             ('semantic', 1, '{"pkg 0.1.0": 1}'::jsonb),
             ('store_text', 1, '{"pkg 0.1.0": 1}'::jsonb),
             ('working_memory', NULL, NULL)$$,
    'memory_stats counts the current vectors per model version: the mix of precisions shows');
RESET ROLE;

SELECT is(memory_system.reembed_all(memory_system._embedding_model()), 0::bigint,
          'without a version, every row has a vector of the model: nothing to queue');
SELECT is(memory_system.reembed_all(memory_system._embedding_model(), 'pkg 0.1.0+bf16'), 4::bigint,
          'with the bf16 version: the two fp32 episodes, the fp32 fact and store text are queued');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE state = 'pending'), 4::bigint,
          'one pending item each');
SELECT is(memory_system.reembed_all(memory_system._embedding_model(), 'pkg 0.1.0+bf16'), 4::bigint,
          're-running it retargets the same items, adding none');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE state = 'pending'), 4::bigint,
          'still one pending item each');
SELECT throws_ok($$SELECT memory_system.reembed_all('m', '  ')$$, 'NX020', NULL,
                 'an empty version is refused (NULL means any)');

SELECT * FROM finish();
ROLLBACK;
