-- Imports at the SQL level (memory_system.import_*): conversions, batches with rejects named by
-- SQLSTATE, the ledger (nothing twice), replaced and adopted working-memory keys, validation, and
-- rollback to the state before, with its errors; and no agent may touch any of it.
BEGIN;
SELECT plan(42);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('imp_a');
SELECT tests.create_agent('imp_b');

-- conversions ----------------------------------------------------------------------------------
SELECT is(memory_system._import_json('{"a": 1}'), '{"a": 1}'::jsonb, 'JSON text stays JSON');
SELECT is(memory_system._import_json('plain words'), '"plain words"'::jsonb, 'other text becomes a JSON string');
SELECT is(memory_system._import_json(NULL), NULL, 'NULL stays NULL');
SELECT is(memory_system._import_tags('["a", "b"]'), ARRAY['a', 'b'], 'tags from a JSON array');
SELECT is(memory_system._import_tags('{x,"y z"}'), ARRAY['x', 'y z'], 'tags from an array literal');
SELECT is(memory_system._import_tags(NULL), '{}'::text[], 'no tags');
SELECT is(memory_system._json_sha256('{"b": 1, "a": 2}'), sha256(convert_to('{"a": 2, "b": 1}', 'UTF8')),
          'the checksum of a JSON value is that of its canonical text');

-- a batch of episodes, two of them bad ----------------------------------------------------------
SELECT memory_system.import_stage();
INSERT INTO pg_temp.nexus_import_episode (source_ref, agent_id, content, metadata, tags, importance, created_at)
VALUES ('t/1', 'imp_a', 'the first imported episode', '{"k": 1}', '["x"]', '0.9', '2024-01-02 03:04:05+00'),
       ('t/2', 'imp_a', 'metadata is a list', '[1, 2]', NULL, NULL, NULL),
       ('t/3', 'imp_b', 'when is never', NULL, NULL, NULL, 'not a time'),
       ('t/4', 'imp_b', 'the fourth', NULL, '{a,b}', NULL, NULL);
INSERT INTO memory_system.imports (format, source) VALUES ('legacy', 'pgtap');
CREATE TEMP TABLE imp AS SELECT max(import_id) AS id FROM memory_system.imports;

SELECT results_eq($$SELECT written, rejected FROM memory_system.import_batch((SELECT id FROM imp), 'episode', 1, 4)$$,
                  $$VALUES (2::bigint, 2::bigint)$$, 'a batch with two bad rows writes the two good ones');
SELECT results_eq($$SELECT source_ref, sqlstate FROM memory_system.import_rejects ORDER BY source_ref$$,
                  $$VALUES ('t/2', 'NX012'), ('t/3', '22007')$$, 'the bad rows are named with their SQLSTATE');
SELECT results_eq($$SELECT e.agent_id, e.content, e.metadata, e.tags, e.importance, e.created_at
                      FROM nexus_memory.zep_episodic_memory AS e
                      JOIN memory_system.import_rows AS r ON r.kind = 'episode' AND r.target_id = e.id
                     WHERE r.source_ref = 't/1'$$,
                  $$VALUES ('imp_a', 'the first imported episode', '{"k": 1}'::jsonb, ARRAY['x'], 0.9::real,
                            timestamptz '2024-01-02 03:04:05+00')$$, 'every field converted');
SELECT is((SELECT tags FROM nexus_memory.zep_episodic_memory WHERE content = 'the fourth'), ARRAY['a', 'b'],
          'an array literal of tags');
SELECT is((SELECT count(*)::int FROM memory_system.embeddings_queue AS q
             JOIN memory_system.import_rows AS r ON r.kind = 'episode' AND r.target_id = q.source_id
            WHERE q.source_table = 'zep_episodic_memory'), 2, 'each imported episode is queued for embedding');
SELECT ok((SELECT count(*) FROM nexus_memory.text_postings AS p
             JOIN memory_system.import_rows AS r ON r.kind = 'episode' AND r.target_id = p.doc_id
            WHERE p.kind = 'e' AND p.agent_id = r.agent_id) > 0, 'and indexed for BM25');
SELECT is((SELECT source_sha256 FROM memory_system.import_rows WHERE source_ref = 't/1'),
          sha256(convert_to('the first imported episode', 'UTF8')), 'the ledger keeps the source checksum');

-- the same rows again: nothing twice
SELECT results_eq($$SELECT written, rejected FROM memory_system.import_batch((SELECT id FROM imp), 'episode', 1, 4)$$,
                  $$VALUES (0::bigint, 2::bigint)$$, 'a second pass writes nothing twice; the bad rows fail again');
SELECT is((SELECT count(*)::int FROM nexus_memory.zep_episodic_memory WHERE agent_id IN ('imp_a', 'imp_b')), 2,
          'still two episodes');
SELECT is((SELECT count(*)::int FROM memory_system.import_rejects), 2, 'rejects are not duplicated');
SELECT throws_ok($$SELECT * FROM memory_system.import_batch((SELECT id FROM imp), 'nonsense', 1, 4)$$,
                 'NX050', NULL, 'an unknown kind is NX050');

-- working memory: replaced (prior kept), adopted (equal), new -------------------------------------
SET LOCAL ROLE imp_a;
SELECT nexus.working_memory_set('goal', '"old goal"');
SELECT nexus.working_memory_set('same', '{"v": 1}');
RESET ROLE;
CREATE TEMP TABLE wm_before AS SELECT * FROM nexus_memory.working_memory_contexts WHERE agent_id = 'imp_a';
INSERT INTO pg_temp.nexus_import_working_memory (source_ref, agent_id, context_key, value, priority)
VALUES ('t/wm/goal', 'imp_a', 'goal', '"new goal"', 0),
       ('t/wm/goal-redis', 'imp_a', 'goal', '"newest goal"', 1),
       ('t/wm/same', 'imp_a', 'same', '{"v": 1}', 0),
       ('t/wm/fresh', 'imp_a', 'fresh', 'not json', 0);
SELECT is(memory_system.import_dedupe_working_memory(), 1::bigint, 'the same key from two sources: one is superseded');
SELECT results_eq($$SELECT written, rejected FROM memory_system.import_batch((SELECT id FROM imp), 'working_memory', 1, 4)$$,
                  $$VALUES (3::bigint, 0::bigint)$$, 'three keys recorded');
SELECT results_eq($$SELECT context_key, value FROM nexus_memory.working_memory_contexts
                     WHERE agent_id = 'imp_a' ORDER BY context_key$$,
                  $$VALUES ('fresh', '"not json"'::jsonb), ('goal', '"newest goal"'::jsonb), ('same', '{"v": 1}'::jsonb)$$,
                  'the higher-priority source wins; text that is not JSON is a JSON string');
SELECT results_eq($$SELECT source_ref, prior IS NOT NULL, adopted FROM memory_system.import_rows
                     WHERE kind = 'working_memory' ORDER BY source_ref$$,
                  $$VALUES ('t/wm/fresh', false, false), ('t/wm/goal-redis', true, false), ('t/wm/same', false, true)$$,
                  'a replaced key keeps its prior row; an equal one is adopted');
SELECT is((SELECT updated_at FROM nexus_memory.working_memory_contexts WHERE agent_id = 'imp_a' AND context_key = 'same'),
          (SELECT updated_at FROM wm_before WHERE context_key = 'same'), 'an adopted key is left untouched');

-- validation ------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT memory_system.import_check_staged('{episode,vectors}')$$, 'NX050', NULL,
                 'checksums of an unknown kind: NX050');
SELECT memory_system.import_check_staged('{episode}');
CREATE TEMP TABLE rep AS SELECT memory_system.import_validate((SELECT id FROM imp)) AS r;
SELECT is((SELECT r -> 'ok' FROM rep), 'false'::jsonb, 'rejected rows make the import invalid');
SELECT is((SELECT (r #> '{kinds,episode}') - 'examples' - 'embedded' FROM rep),
          '{"source": 4, "target": 2, "equal": 2, "missing": 2, "mismatched": 0, "rejected": 2,
            "adapted": 0, "adapted_by": {}}'::jsonb,
          'counts per kind');
SELECT is((SELECT r #> '{kinds,episode,examples,missing}' FROM rep), '["t/2", "t/3"]'::jsonb, 'the missing rows are named');
SELECT is((SELECT report FROM memory_system.imports WHERE import_id = (SELECT id FROM imp)), (SELECT r FROM rep),
          'the report is stored on the import');
UPDATE nexus_memory.zep_episodic_memory SET content = 'tampered' WHERE content = 'the fourth';
SELECT is(memory_system.import_validate((SELECT id FROM imp)) #> '{kinds,episode,examples,mismatched}',
          '["t/4"]'::jsonb, 'a changed row is a mismatch');
UPDATE nexus_memory.zep_episodic_memory SET content = 'the fourth' WHERE content = 'tampered';
DELETE FROM pg_temp.nexus_import_check WHERE source_ref IN ('t/2', 't/3');
DELETE FROM memory_system.import_rejects;
SELECT is(memory_system.import_validate((SELECT id FROM imp)) -> 'ok', 'true'::jsonb,
          'every source row there with an equal checksum: valid');

-- rollback --------------------------------------------------------------------------------------
SELECT throws_ok('SELECT memory_system.import_rollback(-1)', 'NX051', NULL, 'no such import: NX051');
SELECT lives_ok(format('SELECT memory_system.import_rollback(%s)', (SELECT id FROM imp)), 'rollback');
SELECT is((SELECT count(*)::int FROM nexus_memory.zep_episodic_memory WHERE agent_id IN ('imp_a', 'imp_b')), 0,
          'the imported episodes are gone');
SELECT is((SELECT count(*)::int FROM memory_system.embeddings_queue WHERE agent_id IN ('imp_a', 'imp_b')), 0,
          'with their queue items');
SELECT is((SELECT count(*)::int FROM nexus_memory.text_postings WHERE agent_id IN ('imp_a', 'imp_b')), 0,
          'and their postings');
SELECT results_eq($$SELECT id, context_key, value, expires_at, created_at, updated_at
                      FROM nexus_memory.working_memory_contexts WHERE agent_id = 'imp_a' ORDER BY id$$,
                  $$SELECT id, context_key, value, expires_at, created_at, updated_at FROM wm_before ORDER BY id$$,
                  'working memory is back as it was: the replaced key restored, the new one gone, the adopted one kept');
SELECT is((SELECT count(*)::int FROM memory_system.import_rows WHERE import_id = (SELECT id FROM imp)), 0,
          'the ledger of the import is cleared (its source can be imported again)');
SELECT is((SELECT state FROM memory_system.imports WHERE import_id = (SELECT id FROM imp)), 'rolled_back', 'marked');
SELECT throws_ok(format('SELECT memory_system.import_rollback(%s)', (SELECT id FROM imp)), 'NX052', NULL,
                 'twice: NX052');

-- no agent may import, read the ledger or roll back ----------------------------------------------
SET LOCAL ROLE imp_a;
SELECT throws_ok('SELECT * FROM memory_system.import_batch(1, ''episode'', 1, 1)', '42501', NULL,
                 'an agent cannot run an import batch');
SELECT throws_ok('SELECT memory_system.import_rollback(1)', '42501', NULL, 'an agent cannot roll back an import');
SELECT throws_ok('SELECT * FROM memory_system.import_rows', '42501', NULL, 'an agent cannot read the ledger');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
