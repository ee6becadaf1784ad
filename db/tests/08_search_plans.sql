-- Query plans of search at a realistic size: one agent with 20,000 episodes (4,000 of them embedded)
-- among agents of a few hundred each. The vector branch must be an HNSW index scan of the agent's
-- partition alone, and the text branch an index-only scan of the postings by (agent, lexeme, kind).
-- The queries are those of nexus.memory_search and nexus.text_candidates, with the agent as a text
-- parameter as in those functions (v_agent), planned both ways PL/pgSQL may plan them (custom, generic).
-- Facts (4,000 of the same agent, 30% ended): the vector branch that leaves out facts that no longer
-- hold stays an HNSW index scan, each fact checked by an index probe.
BEGIN;
SELECT plan(35);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('planner');
SELECT count(tests.create_agent('other' || g)) FROM generate_series(1, 8) AS g;
SELECT setseed(0.42);

-- the plan of a statement, as text
CREATE FUNCTION pg_temp.plan(p_sql text) RETURNS text LANGUAGE plpgsql
AS $$
DECLARE
    r record;
    v text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql LOOP
        v := v || r."QUERY PLAN" || E'\n';
    END LOOP;
    RETURN v;
END
$$;
-- the distinct vector partitions a plan names
CREATE FUNCTION pg_temp.partitions_in(p_plan text) RETURNS text[] LANGUAGE sql
AS $$ SELECT ARRAY(SELECT DISTINCT m[1] FROM regexp_matches(p_plan, '(episode_embeddings_(?:[0-9a-f]{16}|default))', 'g') AS m ORDER BY 1) $$;

-- load ---------------------------------------------------------------------------------------------
-- Bulk load as the owner: triggers off (the postings and statistics are filled below as the triggers
-- would, which 07_search.sql checks), and the HNSW index built once after the load instead of 6,000
-- incremental inserts. The index is dropped and created again exactly as the migration made it.
CREATE TEMP TABLE index_before AS
SELECT i.indrelid::regclass::text AS tbl, pg_get_indexdef(i.indexrelid) AS def
  FROM pg_catalog.pg_index AS i
 WHERE i.indrelid IN (SELECT inhrelid FROM pg_catalog.pg_inherits
                       WHERE inhparent = 'nexus_memory.episode_embeddings'::regclass)
   AND i.indexrelid::regclass::text LIKE '%embedding_idx'
UNION ALL
SELECT 'nexus_memory.episode_embeddings', pg_get_indexdef('nexus_memory.episode_embeddings_embedding_idx'::regclass);
DROP INDEX nexus_memory.episode_embeddings_embedding_idx;

SET LOCAL session_replication_role = replica;
INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content, session_id, created_at)
SELECT s.agent_id,
       (SELECT string_agg('w' || substr(md5((1 + floor(power(random(), 2) * 5000)::int + 0 * k + 0 * s.g)::text), 1, 6), ' ')
          FROM generate_series(1, 8) AS k),
       's' || (s.g % 50), now() - s.g * interval '1 minute'
  FROM (SELECT 'planner' AS agent_id, g FROM generate_series(1, 20000) AS g
        UNION ALL
        SELECT 'other' || (g % 8 + 1), g FROM generate_series(1, 2000) AS g) AS s;
INSERT INTO nexus_memory.text_postings (agent_id, lexeme, kind, doc_id, tf, dl)
SELECT e.agent_id, l.lexeme, 'e', e.id, coalesce(array_length(l.positions, 1), 1),
       sum(coalesce(array_length(l.positions, 1), 1)) OVER (PARTITION BY e.id)
  FROM nexus_memory.zep_episodic_memory AS e, unnest(e.content_tsv) AS l;
SELECT memory_system.text_index_rebuild_stats();
-- every episode of the other agents has a vector; one in five of the planner's (the rest is queued)
INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
SELECT e.agent_id, e.id, memory_system._embedding_model(), e.content_sha256,
       (SELECT array_agg(random() - 0.5 + 0 * e.id + 0 * k)::float4[] FROM generate_series(1, 384) AS k)::public.vector
  FROM nexus_memory.zep_episodic_memory AS e
 WHERE e.agent_id <> 'planner' OR e.id % 5 = 0;
RESET session_replication_role;
CREATE INDEX episode_embeddings_embedding_idx ON nexus_memory.episode_embeddings
    USING hnsw (embedding public.vector_cosine_ops) WITH (m = 16, ef_construction = 128);
ANALYZE nexus_memory.zep_episodic_memory, nexus_memory.text_postings, nexus_memory.text_stats,
        nexus_memory.episode_embeddings;

SELECT set_eq(
    $$SELECT i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index AS i
       WHERE i.indrelid IN (SELECT inhrelid FROM pg_catalog.pg_inherits
                             WHERE inhparent = 'nexus_memory.episode_embeddings'::regclass)
         AND i.indexrelid::regclass::text LIKE '%embedding_idx'
      UNION ALL
      SELECT 'nexus_memory.episode_embeddings', pg_get_indexdef('nexus_memory.episode_embeddings_embedding_idx'::regclass)$$,
    'SELECT tbl, def FROM index_before',
    'the HNSW indexes are built again exactly as the migration defined them (names, partitions, definition)');

-- what the plans must name
CREATE TEMP TABLE facts AS
SELECT (SELECT min(tableoid::regclass::text) FROM nexus_memory.episode_embeddings WHERE agent_id = 'planner') AS part,
       (SELECT count(DISTINCT tableoid) FROM nexus_memory.episode_embeddings WHERE agent_id = 'planner') AS parts,
       (SELECT count(DISTINCT tableoid) FROM nexus_memory.episode_embeddings) AS parts_used,
       (SELECT min(episode_id) FROM nexus_memory.episode_embeddings WHERE agent_id = 'planner') AS probe_id,
       (SELECT value FROM memory_system.settings WHERE name = 'embedding_model') AS model,
       -- a lexeme the planner has in a few dozen memories, and one every agent has
       (SELECT lexeme FROM nexus_memory.text_postings WHERE agent_id = 'planner'
         GROUP BY lexeme HAVING count(*) BETWEEN 20 AND 60 ORDER BY lexeme LIMIT 1) AS lexeme;
CREATE TEMP TABLE plans (name text PRIMARY KEY, plan text);
GRANT SELECT ON facts TO PUBLIC;
GRANT ALL ON plans TO PUBLIC;
SELECT results_eq('SELECT parts, parts_used > 4, (SELECT count(*) FROM nexus_memory.episode_embeddings WHERE agent_id = ''planner'') FROM facts',
                  $$VALUES (1::bigint, true, 4000::bigint)$$,
                  'the planner''s 4,000 vectors are in one partition; the other agents'' in several others');
SELECT cmp_ok((SELECT count(*) FROM nexus_memory.text_postings), '>', 150000::bigint, 'the postings hold the 22,000 episodes');
SELECT isnt((SELECT lexeme FROM facts), NULL, 'a lexeme of a few dozen of the planner''s memories');

-- the queries, as the agent ----------------------------------------------------------------------------
SET LOCAL ROLE planner;
-- the vector branch of nexus.memory_search (episodes, no filter)
PREPARE vector_branch(text, text, public.vector, integer) AS
SELECT x.episode_id, x.embedding OPERATOR(public.<=>) $3 AS dist
  FROM nexus_memory.episode_embeddings AS x
 WHERE x.agent_id = $1 AND x.model = $2
 ORDER BY x.embedding OPERATOR(public.<=>) $3
 LIMIT $4;
-- the same with memory_search's filters (session, since, until, tags_all, metadata_contains)
PREPARE vector_branch_filtered(text, text, public.vector, integer, boolean, text, timestamptz, timestamptz, text[], jsonb) AS
SELECT x.episode_id, x.embedding OPERATOR(public.<=>) $3 AS dist
  FROM nexus_memory.episode_embeddings AS x
 WHERE x.agent_id = $1 AND x.model = $2
   AND (NOT $5 OR EXISTS (
        SELECT FROM nexus_memory.zep_episodic_memory AS e
         WHERE e.agent_id = x.agent_id AND e.id = x.episode_id
           AND ($6 IS NULL OR e.session_id = $6)
           AND ($7 IS NULL OR e.created_at >= $7)
           AND ($8 IS NULL OR e.created_at < $8)
           AND ($9 IS NULL OR e.tags @> $9)
           AND ($10 IS NULL OR e.metadata @> $10)))
 ORDER BY x.embedding OPERATOR(public.<=>) $3
 LIMIT $4;
-- its exact twin, for an agent with a small share of a crowded partition: no HNSW
PREPARE vector_exact(text, text, public.vector, integer) AS
SELECT x.episode_id, x.embedding OPERATOR(public.<=>) $3 AS dist
  FROM nexus_memory.episode_embeddings AS x
 WHERE x.agent_id = $1 AND x.model = $2
 ORDER BY (x.embedding OPERATOR(public.<=>) $3) + 0
 LIMIT $4;
-- the postings lookups of nexus.text_candidates (document frequency, then the postings read)
PREPARE postings_df(text, text, "char"[], integer) AS
SELECT count(*) FROM (SELECT 1 FROM nexus_memory.text_postings AS p
                       WHERE p.agent_id = $1 AND p.lexeme = $2 AND p.kind = ANY ($3) LIMIT $4) AS c;
PREPARE postings_read(text, text, "char"[]) AS
SELECT p.kind, p.doc_id, p.tf, p.dl FROM nexus_memory.text_postings AS p
 WHERE p.agent_id = $1 AND p.lexeme = $2 AND p.kind = ANY ($3);

INSERT INTO plans
SELECT 'vector custom', pg_temp.plan(format('EXECUTE vector_branch(current_user, %L, %L, 100)', f.model,
                                            array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f
UNION ALL
SELECT 'vector filtered custom', pg_temp.plan(format(
           'EXECUTE vector_branch_filtered(current_user, %L, %L, 100, true, NULL, now() - interval ''1 year'', NULL, NULL, NULL)',
           f.model, array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f
UNION ALL
SELECT 'postings_df custom', pg_temp.plan(format('EXECUTE postings_df(current_user, %L, %L, 2147483647)', f.lexeme, '{e}'))
  FROM facts AS f
UNION ALL
SELECT 'postings_read custom', pg_temp.plan(format('EXECUTE postings_read(current_user, %L, %L)', f.lexeme, '{e,s}'))
  FROM facts AS f
UNION ALL
SELECT 'exact vector custom', pg_temp.plan(format('EXECUTE vector_exact(current_user, %L, %L, 100)', f.model,
                                                   array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f;
SET LOCAL plan_cache_mode = force_generic_plan;
INSERT INTO plans
SELECT 'vector generic', pg_temp.plan(format('EXECUTE vector_branch(current_user, %L, %L, 100)', f.model,
                                             array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f
UNION ALL
SELECT 'vector filtered generic', pg_temp.plan(format(
           'EXECUTE vector_branch_filtered(current_user, %L, %L, 100, true, NULL, now() - interval ''1 year'', NULL, NULL, NULL)',
           f.model, array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f
UNION ALL
SELECT 'postings_read generic', pg_temp.plan(format('EXECUTE postings_read(current_user, %L, %L)', f.lexeme, '{e}'))
  FROM facts AS f;
RESET plan_cache_mode;
-- the same lookups written against current_user directly, as most API functions (recent_episodes,
-- get_episode, ...) compare agent_id. (The row-level security policies compare it with the agent's
-- id and its spaces', docs/spaces.md: an index condition, but no partition pruning of their own.)
INSERT INTO plans
SELECT 'vector current_user', pg_temp.plan(format(
           'SELECT x.episode_id FROM nexus_memory.episode_embeddings AS x '
           'WHERE x.agent_id = (current_user::text COLLATE "default") AND x.model = %L '
           'ORDER BY x.embedding OPERATOR(public.<=>) %L LIMIT 100', f.model, array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f
UNION ALL
SELECT 'postings current_user', pg_temp.plan(format(
           $$SELECT p.doc_id FROM nexus_memory.text_postings AS p WHERE p.agent_id = current_user AND p.lexeme = %L AND p.kind = ANY ('{e}')$$,
           f.lexeme))
  FROM facts AS f
UNION ALL
SELECT 'recent_episodes', pg_temp.plan(
           'SELECT e.id FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = current_user '
           'ORDER BY e.created_at DESC, e.id DESC LIMIT 20');

-- vector branch: HNSW on the agent's partition, and no other partition
SELECT matches(p.plan, format('Index Scan using %s_embedding_idx on %s', split_part(f.part, '.', 2), split_part(f.part, '.', 2)),
               format('%s: an HNSW index scan of the agent''s partition', p.name))
  FROM plans AS p, facts AS f WHERE p.name IN ('vector custom', 'vector filtered custom', 'vector filtered generic')
 ORDER BY p.name;
SELECT is(pg_temp.partitions_in(p.plan), ARRAY[split_part(f.part, '.', 2)], format('%s: the agent''s partition only', p.name))
  FROM plans AS p, facts AS f WHERE p.name IN ('vector custom', 'vector filtered custom', 'vector filtered generic')
 ORDER BY p.name;
SELECT matches((SELECT plan FROM plans WHERE name = 'vector generic'),
               format('Index Scan using %s_embedding_idx on %s', split_part(f.part, '.', 2), split_part(f.part, '.', 2)),
               'vector branch (generic plan): an HNSW index scan of the agent''s partition')
  FROM facts AS f;
SELECT matches((SELECT plan FROM plans WHERE name = 'vector generic'),
               format('Subplans Removed: %s', (SELECT count(*) - 1 FROM pg_catalog.pg_inherits
                                                WHERE inhparent = 'nexus_memory.episode_embeddings'::regclass)),
               'vector branch (generic plan): every other agent''s partition is pruned at execution start');
SELECT is(pg_temp.partitions_in((SELECT plan FROM plans WHERE name = 'vector generic')), ARRAY[split_part(f.part, '.', 2)],
          'vector branch (generic plan): the agent''s partition only')
  FROM facts AS f;
SELECT doesnt_match((SELECT string_agg(plan, '') FROM plans WHERE name LIKE 'vector %'),
                    '((Seq Scan|Bitmap Heap Scan) on episode_embeddings|Sort(?! Key))',
                    'vector branch: never a sequential or bitmap scan nor a sort of the vectors');
SELECT is(pg_temp.partitions_in((SELECT plan FROM plans WHERE name = 'vector current_user')), ARRAY[split_part(f.part, '.', 2)],
          'vector query comparing agent_id with current_user: the agent''s partition only')
  FROM facts AS f;

-- text branch: index-only scans of the postings, keyed by agent, lexeme and kind
SELECT matches(plan, 'Index Only Scan using text_postings_pkey on text_postings', format('%s: an index-only scan of the postings', name))
  FROM plans WHERE name LIKE 'postings%' ORDER BY name;
SELECT matches(plan, 'Index Cond: \(\(agent_id = [^\n]*\) AND \(lexeme = [^\n]*\) AND \(kind = ANY',
               format('%s: agent, lexeme and kind are all index conditions', name))
  FROM plans WHERE name LIKE 'postings%' ORDER BY name;

-- recent_episodes: newest first by the (agent_id, created_at) index, not a sort of every episode
SELECT matches((SELECT plan FROM plans WHERE name = 'recent_episodes'), 'Index Scan using zep_episodic_memory_agent_created_idx',
               'recent_episodes reads the newest episodes of the agent by index');

-- and the answers at this size
SELECT is((SELECT id FROM nexus.memory_search(query_embedding => (SELECT embedding FROM nexus_memory.episode_embeddings
                                                                     WHERE episode_id = (SELECT probe_id FROM facts)),
                                               limit_n => 1)),
          (SELECT probe_id FROM facts), 'vector search finds the memory whose vector is the query, among 4,000');
SELECT is((SELECT id FROM nexus.memory_search((SELECT content FROM nexus_memory.zep_episodic_memory WHERE id = (SELECT probe_id FROM facts)),
                                              limit_n => 1)),
          (SELECT probe_id FROM facts), 'text search ranks the memory with the query''s exact words first, among 20,000');
RESET ROLE;

-- the exact twin: the agent's partition alone, never the HNSW index
SELECT is(pg_temp.partitions_in((SELECT plan FROM plans WHERE name = 'exact vector custom')), ARRAY[split_part(f.part, '.', 2)],
          'exact vector branch: the agent''s partition only')
  FROM facts AS f;
SELECT doesnt_match((SELECT plan FROM plans WHERE name = 'exact vector custom'), 'embedding_idx',
                    'exact vector branch: no HNSW scan');

-- facts that no longer hold (docs/facts.md): the vector branch of facts checks each one the HNSW
-- scan returns, row by row (a scalar subquery: an EXISTS would become a hash join over every fact
-- and a sort of every vector). 4,000 facts of the planner, 30% ended, with vectors; the HNSW
-- index built once after the load, as for the episodes.
CREATE TEMP TABLE semantic_index AS
SELECT pg_get_indexdef('nexus_memory.semantic_memory_embeddings_embedding_idx'::regclass) AS def;
DROP INDEX nexus_memory.semantic_memory_embeddings_embedding_idx;
SET LOCAL session_replication_role = replica;
INSERT INTO nexus_memory.semantic_memories (agent_id, content, valid_from, valid_to, ended_by, ended_at)
SELECT 'planner', 'fact ' || g, now() - interval '1 day', CASE WHEN g % 10 < 3 THEN now() - interval '1 hour' END,
       CASE WHEN g % 10 < 3 THEN 'superseded' END, CASE WHEN g % 10 < 3 THEN now() END
  FROM generate_series(1, 4000) AS g;
INSERT INTO nexus_memory.semantic_memory_embeddings (agent_id, memory_id, model, content_sha256, embedding)
SELECT s.agent_id, s.id, memory_system._embedding_model(), s.content_sha256,
       (SELECT array_agg(random() - 0.5 + 0 * s.id + 0 * k)::float4[] FROM generate_series(1, 384) AS k)::public.vector
  FROM nexus_memory.semantic_memories AS s WHERE s.agent_id = 'planner';
RESET session_replication_role;
DO $$ BEGIN EXECUTE replace((SELECT def FROM semantic_index), ' ON ONLY ', ' ON '); END $$;
ANALYZE nexus_memory.semantic_memories, nexus_memory.semantic_memory_embeddings;
CREATE TEMP TABLE fact_facts AS
SELECT memory_system._vector_partition('semantic_memory_embeddings', 'planner') AS part,
       (SELECT min(id) FROM nexus_memory.semantic_memories WHERE agent_id = 'planner' AND valid_to IS NOT NULL) AS ended_id;
GRANT SELECT ON fact_facts TO PUBLIC;

SET LOCAL ROLE planner;
-- as nexus._memory_search_vector builds it for kind s, facts that hold at $4
PREPARE fact_vector_branch(text, text, public.vector, timestamptz, integer) AS
SELECT x.memory_id, x.embedding OPERATOR(public.<=>) $3 AS dist
  FROM nexus_memory.semantic_memory_embeddings AS x
 WHERE x.agent_id = $1 AND x.model = $2
   AND (SELECT v.content_sha256 = x.content_sha256 AND v.valid_from <= $4 AND (v.valid_to IS NULL OR v.valid_to > $4)
          FROM nexus_memory.semantic_memories AS v
         WHERE v.agent_id = x.agent_id AND v.id = x.memory_id)
 ORDER BY x.embedding OPERATOR(public.<=>) $3
 LIMIT $5;
INSERT INTO plans
SELECT 'fact vector custom', pg_temp.plan(format('EXECUTE fact_vector_branch(current_user, %L, %L, now(), 100)', f.model,
                                                  array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f;
SET LOCAL plan_cache_mode = force_generic_plan;
INSERT INTO plans
SELECT 'fact vector generic', pg_temp.plan(format('EXECUTE fact_vector_branch(current_user, %L, %L, now(), 100)', f.model,
                                                   array_fill(0.05::real, ARRAY[384])::public.vector))
  FROM facts AS f;
RESET plan_cache_mode;
SELECT matches(p.plan, format('Index Scan using \S+ on %s', f.part),
               format('%s: an HNSW index scan of the agent''s partition of fact vectors', p.name))
  FROM plans AS p, fact_facts AS f WHERE p.name LIKE 'fact vector %' ORDER BY p.name;
SELECT matches(p.plan, 'SubPlan', format('%s: each fact the scan returns is checked by an index probe', p.name))
  FROM plans AS p WHERE p.name LIKE 'fact vector %' ORDER BY p.name;
SELECT doesnt_match((SELECT string_agg(plan, '') FROM plans WHERE name LIKE 'fact vector %'),
                    '(Seq Scan|Bitmap Heap Scan|Hash|Sort(?! Key))',
                    'fact vector branch: never a scan of every fact or vector, a hash or a sort');
-- and the answers: the vector of a fact that has ended finds the facts that hold, unless asked
SELECT isnt((SELECT id FROM nexus.memory_search(query_embedding => (SELECT embedding FROM nexus_memory.semantic_memory_embeddings
                                                                       WHERE memory_id = (SELECT ended_id FROM fact_facts)),
                                                kinds => '{semantic}', limit_n => 1)),
            (SELECT ended_id FROM fact_facts), 'vector search, among 4,000 facts: an ended fact is not found now');
SELECT is((SELECT id FROM nexus.memory_search(query_embedding => (SELECT embedding FROM nexus_memory.semantic_memory_embeddings
                                                                     WHERE memory_id = (SELECT ended_id FROM fact_facts)),
                                              kinds => '{semantic}', limit_n => 1, include_history => true)),
          (SELECT ended_id FROM fact_facts), 'vector search with include_history: the ended fact its vector is');
RESET ROLE;
SELECT * FROM finish();
ROLLBACK;
