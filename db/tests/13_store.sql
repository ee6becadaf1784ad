-- The store (LangGraph BaseStore on NEXUS): put/get/delete round trips, texts replaced on re-put with
-- the queue and postings following, stale vectors refused, filters, namespace prefixes and listing,
-- TTL (invisible at once, refresh on read, the sweep), bad input with its SQLSTATE, and isolation.
BEGIN;
SELECT plan(78);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- the keys a search returns, in order
CREATE FUNCTION pg_temp.keys(p_sql text) RETURNS text[] LANGUAGE plpgsql
AS $$
DECLARE
    v text[];
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(s.key ORDER BY s.ord), ''{}'') '
                   'FROM (SELECT q.key, row_number() OVER () AS ord FROM (%s) AS q) AS s', p_sql) INTO v;
    RETURN v;
END
$$;

-- not an agent --------------------------------------------------------------------------------
SELECT throws_ok($$SELECT nexus.store_put('{a}', 'k', '{}')$$, 'NX001', NULL, 'store_put: a role that is no agent');

SET LOCAL ROLE alice;
-- put and get ---------------------------------------------------------------------------------
SELECT isnt(nexus.store_put('{docs,user1}', 'a', '{"content": "the violent storm sank two boats", "n": 9}',
                            '{"content": "the violent storm sank two boats"}'), NULL, 'store_put returns the time written');
SELECT is((SELECT value FROM nexus.store_get('{docs,user1}', 'a')),
          '{"content": "the violent storm sank two boats", "n": 9}'::jsonb, 'store_get: the value round trips');
SELECT is((SELECT count(*) FROM nexus.store_get('{docs,user1}', 'nope')), 0::bigint, 'store_get: an absent key is no row');
SELECT is((SELECT count(*) FROM nexus.store_get('{docs}', 'a')), 0::bigint, 'store_get: the namespace is exact');
SELECT nexus.store_put('{docs,user1}', 'b', '{"content": "invoice overdue", "n": 10}',
                       '{"content": "invoice overdue", "tags.0": "billing", "tags.1": "finance"}');
SELECT nexus.store_put('{docs,user10}', 'c', '{"n": 2, "s": "10"}');
SELECT nexus.store_put('{docsx}', 'd', '{"n": 100, "s": "9"}');
SELECT nexus.store_put('{"p%_q", "ünï"}', 'e', '{"n": 1}');
RESET ROLE;
INSERT INTO ids SELECT key, id FROM nexus_memory.store_items;
INSERT INTO ids SELECT key || ':' || path, t.id FROM nexus_memory.store_texts AS t JOIN nexus_memory.store_items AS i ON i.id = t.item_id;

-- texts: postings and queue -------------------------------------------------------------------
SELECT is((SELECT count(*) FROM nexus_memory.store_texts WHERE item_id = pg_temp.id('b')), 3::bigint,
          'a put with three texts stores three texts');
SELECT ok(EXISTS (SELECT FROM nexus_memory.text_postings WHERE kind = 't' AND doc_id = pg_temp.id('a:content') AND lexeme = 'storm'),
          'a text is in the BM25 postings (kind t) at once');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE source_table = 'store_texts' AND state = 'pending'),
          4::bigint, 'every text is queued for embedding');
SELECT is((SELECT count(*) FROM nexus_memory.store_texts WHERE item_id = pg_temp.id('c')), 0::bigint,
          'a put without texts indexes nothing');

-- the worker's side: claim gives the text, complete writes its vector, a stale one is refused
SELECT is((SELECT content FROM memory_system.claim_batch('w1', 10) WHERE source_table = 'store_texts' AND source_id = pg_temp.id('a:content')),
          'the violent storm sank two boats', 'claim_batch hands out a store text''s content');
CREATE TEMP TABLE claimed AS
SELECT q.id AS item_id, q.source_id, t.content_sha256 FROM memory_system.embeddings_queue AS q
  JOIN nexus_memory.store_texts AS t ON t.id = q.source_id WHERE q.source_table = 'store_texts' AND q.state = 'processing';
SET LOCAL ROLE alice;
-- a re-put: same content for "content" (kept), "tags.0" changed, "tags.1" gone
SELECT nexus.store_put('{docs,user1}', 'b', '{"content": "invoice overdue", "n": 11}',
                       '{"content": "invoice overdue", "tags.0": "accounting"}');
RESET ROLE;
SELECT is((SELECT written FROM memory_system.complete_batch('w1', ARRAY(SELECT item_id FROM claimed ORDER BY item_id),
              ARRAY(SELECT tests.fake_vector(1) FROM claimed ORDER BY item_id),
              ARRAY(SELECT content_sha256 FROM claimed ORDER BY item_id), memory_system._embedding_model())),
          2, 'complete_batch writes the vectors of the texts still current');
SELECT is((SELECT count(*) FROM nexus_memory.store_text_embeddings WHERE text_id = pg_temp.id('b:tags.0')), 0::bigint,
          'the vector of a text changed meanwhile is refused (stale)');
SELECT is((SELECT count(*) FROM nexus_memory.store_text_embeddings), 2::bigint, 'two vectors written: a:content and b:content');
SELECT is((SELECT array_agg(path ORDER BY path) FROM nexus_memory.store_texts WHERE item_id = pg_temp.id('b')),
          '{content,tags.0}'::text[], 're-put: the texts are exactly those given');
SELECT is((SELECT id FROM nexus_memory.store_texts WHERE item_id = pg_temp.id('b') AND path = 'content'), pg_temp.id('b:content'),
          're-put: an unchanged text is the same row (its vector kept)');
SELECT ok(EXISTS (SELECT FROM nexus_memory.store_text_embeddings WHERE text_id = pg_temp.id('b:content')),
          're-put: an unchanged text keeps its vector');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE source_table = 'store_texts' AND source_id = pg_temp.id('b:tags.0') AND state = 'pending'),
          1::bigint, 're-put: the changed text is queued again');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue WHERE source_table = 'store_texts' AND source_id = pg_temp.id('b:tags.1')),
          0::bigint, 're-put: the queue items of a text no longer given are gone');
SELECT ok(NOT EXISTS (SELECT FROM nexus_memory.text_postings WHERE kind = 't' AND doc_id = pg_temp.id('b:tags.1')),
          're-put: the postings of a text no longer given are gone');
SELECT ok(EXISTS (SELECT FROM nexus_memory.text_postings WHERE kind = 't' AND doc_id = pg_temp.id('b:tags.0') AND lexeme = 'account')
          AND NOT EXISTS (SELECT FROM nexus_memory.text_postings WHERE kind = 't' AND doc_id = pg_temp.id('b:tags.0') AND lexeme = 'bill'),
          're-put: a changed text is re-indexed');
SELECT is((SELECT docs FROM (SELECT sum(docs) AS docs FROM nexus_memory.text_stats WHERE agent_id = 'alice') AS s), 3::numeric,
          'text_stats counts the agent''s live texts');

SET LOCAL ROLE alice;
-- search: prefixes, order, filters --------------------------------------------------------------
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs}')$$), '{b,c,a}'::text[],
          'search without a query: the namespace''s items, newest first (b was put again last; docsx is not under docs)');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs,user1}')$$), '{b,a}'::text[],
          'prefix {docs,user1} is whole labels: not user10');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}')$$), '{b,e,d,c,a}'::text[], 'an empty prefix is every namespace');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{p%_q}')$$), '{e}'::text[], '% and _ in a label are plain characters');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{p%}')$$), '{}'::text[], 'a prefix of a label is no match');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', limit_n => 2, offset_n => 1)$$), '{e,d}'::text[], 'limit and offset page');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"n": {"$gt": 9}}')$$), '{b,d}'::text[],
          '$gt compares numbers as numbers (10, 11 and 100 > 9; 9 is not)');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"s": {"$gt": "2"}}')$$), '{d}'::text[],
          '$gt compares strings as strings ("9" > "2", "10" is not)');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"n": {"$gte": 2, "$lte": 11}}')$$), '{b,c,a}'::text[],
          'two operators on one key both apply');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"n": 9}')$$), '{a}'::text[], 'a plain value is equality');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"n": 9.0}')$$), '{a}'::text[], 'numbers are equal as numbers (9 = 9.0)');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"s": {"$ne": "9"}}')$$), '{b,e,c,a}'::text[],
          '$ne: a key the item lacks reads as null, which is not "9"');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"s": null}')$$), '{b,e,a}'::text[],
          'equality with null matches items without the key');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}', filter => '{"n": {"$lt": "5"}}')$$), '{}'::text[],
          'a number is never less than a string: types do not mix');
SELECT throws_ok($$SELECT * FROM nexus.store_search('{}', filter => '{"n": {"$in": [1]}}')$$, 'NX061', NULL, 'an unknown operator is NX061');
SELECT throws_ok($$SELECT * FROM nexus.store_search('{}', filter => '{"n": {"$gt": true}}')$$, 'NX061', NULL, '$gt on a boolean is NX061');
SELECT throws_ok($$SELECT * FROM nexus.store_search('{}', filter => '[1]')$$, 'NX061', NULL, 'a filter that is no object is NX061');

-- search with a query: text before vectors, fused after ------------------------------------------
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs}', query => 'storm at sea')$$), '{a}'::text[],
          'a query finds an item by a word of its texts (BM25)');
SELECT is((SELECT text_rank FROM nexus.store_search('{docs}', query => 'storm') LIMIT 1), 1, 'text_rank reported');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs}', query => 'accounting')$$), '{b}'::text[],
          'the re-put text is searchable at once');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs}', query => 'billing')$$), '{}'::text[],
          'a text no longer given is not');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs,user10}', query => 'storm')$$), '{}'::text[],
          'a query search keeps to the prefix');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{docs}', query => 'storm invoice', filter => '{"n": {"$gt": 10}}')$$), '{b}'::text[],
          'a query search applies the filter');
SELECT is(pg_temp.keys(format($$SELECT * FROM nexus.store_search('{docs}', query_embedding => %L)$$, tests.fake_vector(1))),
          '{a,b}'::text[], 'a vector search finds the embedded items, nearest first');
SELECT results_eq($$SELECT key, text_rank, vector_rank FROM nexus.store_search('{docs}', query => 'storm', query_embedding => tests.fake_vector(1))$$,
                  $$VALUES ('a'::text, 1, 1), ('b', NULL, 2)$$, 'hybrid: both branches fused, each rank reported');
SELECT throws_ok($$SELECT * FROM nexus.store_search('{docs}', query_embedding => '[1,2,3]')$$, 'NX013', NULL,
                 'a query vector of the wrong dimension is NX013');

-- list_namespaces ------------------------------------------------------------------------------
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces()$$,
                  $$VALUES ('{docs,user1}'::text[]), ('{docs,user10}'), ('{docsx}'), ('{p%_q,ünï}')$$, 'every namespace, in code-point order');
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces(prefix => '{docs}')$$,
                  $$VALUES ('{docs,user1}'::text[]), ('{docs,user10}')$$, 'prefix: whole labels');
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces(suffix => '{user1}')$$,
                  $$VALUES ('{docs,user1}'::text[])$$, 'suffix');
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces(prefix => '{*,user10}')$$,
                  $$VALUES ('{docs,user10}'::text[])$$, '* matches one label');
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces(max_depth => 1)$$,
                  $$VALUES ('{docs}'::text[]), ('{docsx}'), ('{p%_q}')$$, 'max_depth cuts and deduplicates');
SELECT results_eq($$SELECT namespace FROM nexus.store_list_namespaces(limit_n => 1, offset_n => 1)$$,
                  $$VALUES ('{docs,user10}'::text[])$$, 'limit and offset page');

-- bad input ------------------------------------------------------------------------------------
SELECT throws_ok(s, e, NULL, format('bad input: %s', s))
  FROM (VALUES ($$SELECT nexus.store_put('{}', 'k', '{}')$$, 'NX060'),
               ($$SELECT nexus.store_put('{a,""}', 'k', '{}')$$, 'NX060'),
               ($$SELECT nexus.store_put('{a}', NULL, '{}')$$, 'NX060'),
               ($$SELECT nexus.store_put('{a}', 'k', '[1]')$$, 'NX012'),
               ($$SELECT nexus.store_put('{a}', 'k', '{}', '{"p": 1}')$$, 'NX060'),
               ($$SELECT nexus.store_put('{a}', 'k', '{}', ttl => '-1 minute')$$, 'NX060'),
               ($$SELECT * FROM nexus.store_search('{}', limit_n => 0)$$, 'NX060'),
               ($$SELECT * FROM nexus.store_search('{}', query => 'x', df_budget => 0)$$, 'NX060'),
               ($$SELECT * FROM nexus.store_list_namespaces(max_depth => 0)$$, 'NX060')) AS b(s, e);

-- TTL ------------------------------------------------------------------------------------------
SELECT nexus.store_put('{tmp}', 't1', '{"x": 1}', '{"x": "ephemeral butterfly"}', ttl => '1 hour');
SELECT ok((SELECT expires_at FROM nexus.store_get('{tmp}', 't1', refresh_ttl => false)) <= clock_timestamp() + interval '1 hour',
          'a ttl sets the expiry');
RESET ROLE;
UPDATE nexus_memory.store_items SET expires_at = clock_timestamp() + interval '1 minute' WHERE key = 't1';
SET LOCAL ROLE alice;
SELECT ok((SELECT expires_at FROM nexus.store_get('{tmp}', 't1', refresh_ttl => false)) < clock_timestamp() + interval '2 minutes',
          'a read without refresh keeps the expiry');
SELECT ok((SELECT expires_at FROM nexus.store_get('{tmp}', 't1')) > clock_timestamp() + interval '50 minutes',
          'a read with refresh pushes the expiry ttl ahead');
RESET ROLE;
UPDATE nexus_memory.store_items SET expires_at = clock_timestamp() - interval '1 second' WHERE key = 't1';
SET LOCAL ROLE alice;
SELECT is((SELECT count(*) FROM nexus.store_get('{tmp}', 't1')), 0::bigint, 'an expired item is absent at once');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{tmp}', query => 'butterfly')$$), '{}'::text[], 'and not searched');
SELECT is((SELECT count(*) FROM nexus.store_list_namespaces(prefix => '{tmp}')), 0::bigint, 'and not listed');
RESET ROLE;
SELECT is(memory_system.purge_expired_store_items(), 1, 'the sweep removes the expired item');
SELECT ok(NOT EXISTS (SELECT FROM nexus_memory.store_texts AS t WHERE NOT EXISTS (SELECT FROM nexus_memory.store_items AS i WHERE i.id = t.item_id))
          AND NOT EXISTS (SELECT FROM nexus_memory.text_postings WHERE kind = 't' AND lexeme = 'butterfli'),
          'with its texts and postings');

-- a narrow prefix among many nearer vectors: its item is still found (the scope checked in the scan)
SET LOCAL ROLE alice;
SELECT count(nexus.store_put('{bulk}', 'b' || g, '{}', '{"t": "bulk"}')) FROM generate_series(1, 210) AS g;
SELECT nexus.store_put('{narrow}', 'far', '{}', '{"t": "narrow"}');
RESET ROLE;
INSERT INTO nexus_memory.store_text_embeddings (agent_id, text_id, model, content_sha256, embedding)
SELECT t.agent_id, t.id, memory_system._embedding_model(), t.content_sha256,
       CASE WHEN i.key = 'far' THEN tests.fake_vector(-1) ELSE tests.fake_vector(1) END
  FROM nexus_memory.store_texts AS t JOIN nexus_memory.store_items AS i ON i.id = t.item_id
 WHERE i.namespace IN ('{bulk}', '{narrow}');
SET LOCAL ROLE alice;
SELECT is(pg_temp.keys(format($$SELECT * FROM nexus.store_search('{narrow}', query_embedding => %L)$$, tests.fake_vector(1))),
          '{far}'::text[], 'a vector search of a narrow prefix finds its item behind 210 nearer ones elsewhere');
-- and by text: the 210 better texts elsewhere fill the pruned branch's pool, the exact scan finds it
SELECT nexus.store_put('{narrow}', 'near', '{}', '{"t": "bulk goods in a narrow place"}');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{narrow}', query => 'bulk')$$),
          '{near}'::text[], 'a text search of a narrow prefix finds its item behind 210 better matches elsewhere');
RESET ROLE;

-- isolation ------------------------------------------------------------------------------------
SET LOCAL ROLE bob;
SELECT nexus.store_put('{docs,user1}', 'a', '{"mine": true}', '{"content": "bob storm"}');
SELECT is((SELECT value FROM nexus.store_get('{docs,user1}', 'a')), '{"mine": true}'::jsonb, 'bob: the same namespace and key is his own item');
SELECT is(pg_temp.keys($$SELECT * FROM nexus.store_search('{}')$$), '{a}'::text[], 'bob sees only his item');
SELECT is((SELECT count(*) FROM nexus_memory.store_items), 1::bigint, 'bob: direct SQL shows his rows only');
SELECT throws_ok($$INSERT INTO nexus_memory.store_items (agent_id, namespace, key, value) VALUES ('alice', '{x}', 'k', '{}')$$,
                 '42501', NULL, 'bob cannot write an item as alice');
RESET ROLE;
SELECT is((SELECT value FROM nexus_memory.store_items WHERE agent_id = 'alice' AND key = 'a'),
          '{"content": "the violent storm sank two boats", "n": 9}'::jsonb, 'alice''s item is untouched');
SELECT is(memory_system.agent_remove('bob', true) >= 1, true, 'agent_remove deletes store items too');

SELECT * FROM finish();
ROLLBACK;
