-- The schema contract: extensions, schemas, tables, columns, indexes, row-level security,
-- nothing of ours in public, and what every function must carry. A rule over every object of a
-- kind (every function, every agent table) is one test naming the objects that break it, so the
-- plan counts this file's tests, not the schema's objects.
BEGIN;
SELECT plan(155);

-- The key columns of an index, in order (expression columns are left out).
CREATE FUNCTION pg_temp.index_columns(p_index regclass)
RETURNS name[]
LANGUAGE sql
STABLE
AS $$
    SELECT array_agg(a.attname ORDER BY k.n)
      FROM pg_catalog.pg_index AS i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, n)
      JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indexrelid = p_index
       AND k.n <= i.indnkeyatts
$$;

-- Is there an index of access method p_am on p_table whose leading key columns are p_columns
-- (and, if p_opclass is given, whose first column uses that operator class)?
CREATE FUNCTION pg_temp.has_index_on(p_table regclass, p_am name, p_columns name[],
                                     p_opclass name DEFAULT NULL)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT EXISTS (
        SELECT
          FROM pg_catalog.pg_index AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
          JOIN pg_catalog.pg_am AS am ON am.oid = c.relam
         WHERE i.indrelid = p_table
           AND am.amname = p_am
           AND (pg_temp.index_columns(i.indexrelid))[1:cardinality(p_columns)] = p_columns
           AND (p_opclass IS NULL
                OR (SELECT o.opcname FROM pg_catalog.pg_opclass AS o
                     WHERE o.oid = i.indclass[0]) = p_opclass))
$$;

-- The tables (any relation holding rows) of the data schemas.
CREATE TEMP VIEW data_tables AS
    SELECT c.oid::regclass AS tbl, n.nspname AS schema_name, c.relname AS table_name,
           c.relkind, c.relrowsecurity, c.relforcerowsecurity
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('nexus', 'nexus_memory', 'memory_system', 'consciousness')
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f');

-- Agent-owned tables: every table with an agent_id column, unless listed here as a system table
-- (the embedding queue: agents never touch it; it keeps agent_id for per-agent stats).
CREATE TEMP TABLE system_tables_with_agent_id (tbl regclass);
-- vector tables hang off a memory table by a foreign key on (agent_id, id) instead
CREATE FUNCTION pg_temp.is_vector_table(p_tbl regclass) RETURNS boolean LANGUAGE sql AS
$$ SELECT p_tbl IN ('nexus_memory.episode_embeddings'::regclass, 'nexus_memory.semantic_memory_embeddings'::regclass,
                   'nexus_memory.store_text_embeddings'::regclass) $$;
-- the text index is derived from the memory tables by trigger (agents read it, never write it):
-- no default for agent_id, and no foreign key (its rows follow their memories' through the triggers)
CREATE FUNCTION pg_temp.is_text_index_table(p_tbl regclass) RETURNS boolean LANGUAGE sql AS
$$ SELECT p_tbl IN ('nexus_memory.text_postings'::regclass, 'nexus_memory.text_stats'::regclass) $$;
INSERT INTO system_tables_with_agent_id VALUES ('memory_system.embeddings_queue');
-- the import ledger and rejects: the owner's bookkeeping of imports (no role reads them)
INSERT INTO system_tables_with_agent_id VALUES ('memory_system.import_rows'), ('memory_system.import_rejects');
-- the cache's outbox: changes waiting for the Redis mirror (no role reads it; a function drains it)
INSERT INTO system_tables_with_agent_id VALUES ('memory_system.cache_outbox');
-- agents' bearer tokens: the owner's (issued by the CLI, mapped by a SECURITY DEFINER function)
INSERT INTO system_tables_with_agent_id VALUES ('memory_system.agent_tokens');
-- the read record and its per-agent settings (docs/privacy.md): written by the owner's functions
-- only, kept after the agent is gone (no foreign key); the record has row-level security forced
-- all the same (db/tests/19_retention_reads.sql)
INSERT INTO system_tables_with_agent_id VALUES ('memory_system.reads'), ('memory_system.read_settings');

CREATE TEMP VIEW agent_tables AS
    SELECT t.*
      FROM data_tables AS t
     WHERE EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = t.tbl AND a.attname = 'agent_id' AND NOT a.attisdropped)
       AND t.tbl NOT IN (SELECT tbl FROM system_tables_with_agent_id);

-- extension and schemas ------------------------------------------------------------------------
SELECT has_extension('public', 'vector', 'pgvector is installed in public');
SELECT has_schema('nexus');
SELECT has_schema('nexus_memory');
SELECT has_schema('memory_system');
SELECT has_schema('consciousness');
SELECT has_schema('nexus_parts');

-- nexus is the API: functions only
SELECT is_empty(
    $$SELECT c.relname, c.relkind FROM pg_catalog.pg_class AS c
       WHERE c.relnamespace = 'nexus'::regnamespace$$,
    'schema nexus has no tables, views, sequences, indexes or composite types');
SELECT is_empty(
    $$SELECT t.typname FROM pg_catalog.pg_type AS t
       WHERE t.typnamespace = 'nexus'::regnamespace$$,
    'schema nexus has no types or domains');

-- tables -------------------------------------------------------------------------------------
SELECT tables_are('nexus', ARRAY[]::name[], 'schema nexus has no tables');
SELECT tables_are('nexus_memory',
                  ARRAY['zep_episodic_memory', 'working_memory_contexts', 'semantic_memories',
                        'episode_embeddings', 'semantic_memory_embeddings', 'text_postings', 'text_stats',
                        'store_items', 'store_texts', 'store_text_embeddings']);
SELECT tables_are('memory_system', ARRAY['agents', 'settings', 'embeddings_queue', 'worker_heartbeats',
                                         'imports', 'import_rows', 'import_rejects', 'cache_outbox',
                                         'agent_tokens', 'retention_rules', 'read_settings', 'reads']);
SELECT tables_are('consciousness', ARRAY['consciousness_checkpoints', 'distributed_consensus']);
SELECT is_empty($$SELECT tbl, relkind FROM data_tables WHERE relkind NOT IN ('r', 'p')$$,
                'no views, materialized views or foreign tables in the data schemas');

-- columns ------------------------------------------------------------------------------------
SELECT columns_are('nexus_memory', 'zep_episodic_memory', ARRAY[
    'id', 'agent_id', 'episode_uuid', 'session_id', 'action_type', 'source', 'content', 'metadata',
    'tags', 'importance', 'valid_at', 'created_at', 'updated_at', 'content_sha256', 'content_tsv']);
SELECT columns_are('nexus_memory', 'working_memory_contexts', ARRAY[
    'id', 'agent_id', 'context_key', 'value', 'expires_at', 'created_at', 'updated_at']);
SELECT columns_are('nexus_memory', 'semantic_memories', ARRAY[
    'id', 'agent_id', 'content', 'metadata', 'tags', 'importance', 'source_episode_id',
    'created_at', 'updated_at', 'content_sha256', 'content_tsv', 'fact_uuid', 'fact_key', 'valid_from',
    'valid_to', 'ended_by', 'ended_at', 'superseded_by', 'content_norm_sha256']);
SELECT columns_are('nexus_memory', 'episode_embeddings', ARRAY[
    'agent_id', 'episode_id', 'model', 'model_version', 'content_sha256', 'embedding', 'embedded_at']);
SELECT columns_are('nexus_memory', 'semantic_memory_embeddings', ARRAY[
    'agent_id', 'memory_id', 'model', 'model_version', 'content_sha256', 'embedding', 'embedded_at']);
SELECT fk_ok('nexus_memory', 'episode_embeddings', ARRAY['agent_id', 'episode_id'],
             'nexus_memory', 'zep_episodic_memory', ARRAY['agent_id', 'id'],
             'an episode''s vector belongs to the episode (and goes with it)');
SELECT fk_ok('nexus_memory', 'semantic_memory_embeddings', ARRAY['agent_id', 'memory_id'],
             'nexus_memory', 'semantic_memories', ARRAY['agent_id', 'id'],
             'a fact''s vector belongs to the fact (and goes with it)');
SELECT columns_are('nexus_memory', 'store_items', ARRAY[
    'id', 'agent_id', 'namespace', 'key', 'value', 'created_at', 'updated_at', 'ttl', 'expires_at']);
SELECT columns_are('nexus_memory', 'store_texts', ARRAY[
    'id', 'agent_id', 'item_id', 'path', 'content', 'content_sha256', 'content_tsv']);
SELECT columns_are('nexus_memory', 'store_text_embeddings', ARRAY[
    'agent_id', 'text_id', 'model', 'model_version', 'content_sha256', 'embedding', 'embedded_at']);
SELECT fk_ok('nexus_memory', 'store_texts', ARRAY['agent_id', 'item_id'],
             'nexus_memory', 'store_items', ARRAY['agent_id', 'id'],
             'a store text belongs to its item (and goes with it)');
SELECT fk_ok('nexus_memory', 'store_text_embeddings', ARRAY['agent_id', 'text_id'],
             'nexus_memory', 'store_texts', ARRAY['agent_id', 'id'],
             'a store text''s vector belongs to the text (and goes with it)');
SELECT col_is_unique('nexus_memory', 'store_items', ARRAY['agent_id', 'namespace', 'key'],
                     'a store item is one per agent, namespace and key');
SELECT columns_are('nexus_memory', 'text_postings', ARRAY['agent_id', 'lexeme', 'kind', 'doc_id', 'tf', 'dl']);
SELECT columns_are('nexus_memory', 'text_stats', ARRAY['agent_id', 'slot', 'docs', 'tokens']);
SELECT col_is_pk('nexus_memory', 'text_postings', ARRAY['agent_id', 'lexeme', 'kind', 'doc_id'],
                 'a posting is keyed by (agent_id, lexeme, kind, doc_id)');
SELECT is((SELECT pg_get_indexdef('nexus_memory.text_postings_pkey'::regclass)),
          'CREATE UNIQUE INDEX text_postings_pkey ON nexus_memory.text_postings USING btree (agent_id, lexeme, kind, doc_id) INCLUDE (tf, dl)',
          'the postings key carries tf and dl, so a lookup is an index-only scan');
SELECT col_has_check('nexus_memory', 'text_postings', 'kind', 'a posting''s kind is checked (e or s)');
SELECT col_is_pk('nexus_memory', 'text_stats', ARRAY['agent_id', 'slot'],
                 'corpus statistics are kept in a few slots per agent');
SELECT columns_are('memory_system', 'agents', ARRAY['agent_id', 'description', 'created_at']);
SELECT columns_are('memory_system', 'embeddings_queue', ARRAY[
    'id', 'agent_id', 'source_table', 'source_id', 'content_sha256', 'model', 'state', 'retry_count',
    'last_error', 'enqueued_at', 'available_at', 'claimed_at', 'processed_at', 'processed_by', 'lease_owner',
    'lease_expires_at']);
SELECT col_type_is('memory_system', 'embeddings_queue', 'content_sha256', 'bytea', 'queue checksum is bytea');
SELECT col_type_is('memory_system', 'embeddings_queue', 'retry_count', 'integer', 'retry_count is integer');
SELECT index_is_unique('memory_system', 'embeddings_queue', 'embeddings_queue_pending_source_idx');
SELECT has_index('memory_system', 'embeddings_queue', 'embeddings_queue_claim_idx', ARRAY['available_at', 'id']);
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'memory_system.embeddings_queue_claim_idx'::regclass),
          '(state = ''pending''::text)', 'the claim index covers pending items only');
SELECT ok((SELECT 'fillfactor=70' = ANY (reloptions) FROM pg_class WHERE oid = 'memory_system.embeddings_queue'::regclass),
          'the queue table leaves room for in-place updates (fillfactor 70)');
SELECT columns_are('memory_system', 'worker_heartbeats', ARRAY['worker_id', 'started_at', 'last_seen', 'stopped_at', 'info']);
SELECT columns_are('memory_system', 'settings', ARRAY['name', 'value', 'updated_at']);
SELECT columns_are('consciousness', 'consciousness_checkpoints', ARRAY[
    'id', 'agent_id', 'checkpoint_name', 'state', 'metadata', 'created_at']);
SELECT columns_are('consciousness', 'distributed_consensus', ARRAY[
    'consensus_key', 'value', 'version', 'updated_by', 'created_at', 'updated_at']);

SELECT col_type_is(s, t, c, ty, format('%s.%s.%s is %s', s, t, c, ty))
  FROM (VALUES
    ('nexus_memory', 'zep_episodic_memory', 'id', 'bigint'),
    ('nexus_memory', 'zep_episodic_memory', 'agent_id', 'text'),
    ('nexus_memory', 'zep_episodic_memory', 'episode_uuid', 'uuid'),
    ('nexus_memory', 'zep_episodic_memory', 'session_id', 'text'),
    ('nexus_memory', 'zep_episodic_memory', 'content', 'text'),
    ('nexus_memory', 'zep_episodic_memory', 'metadata', 'jsonb'),
    ('nexus_memory', 'zep_episodic_memory', 'tags', 'text[]'),
    ('nexus_memory', 'zep_episodic_memory', 'importance', 'real'),
    ('nexus_memory', 'zep_episodic_memory', 'valid_at', 'timestamp with time zone'),
    ('nexus_memory', 'zep_episodic_memory', 'created_at', 'timestamp with time zone'),
    ('nexus_memory', 'zep_episodic_memory', 'updated_at', 'timestamp with time zone'),
    ('nexus_memory', 'zep_episodic_memory', 'content_sha256', 'bytea'),
    ('nexus_memory', 'zep_episodic_memory', 'content_tsv', 'tsvector'),
    ('nexus_memory', 'working_memory_contexts', 'id', 'bigint'),
    ('nexus_memory', 'working_memory_contexts', 'agent_id', 'text'),
    ('nexus_memory', 'working_memory_contexts', 'context_key', 'text'),
    ('nexus_memory', 'working_memory_contexts', 'value', 'jsonb'),
    ('nexus_memory', 'working_memory_contexts', 'expires_at', 'timestamp with time zone'),
    ('nexus_memory', 'working_memory_contexts', 'created_at', 'timestamp with time zone'),
    ('nexus_memory', 'working_memory_contexts', 'updated_at', 'timestamp with time zone'),
    ('nexus_memory', 'semantic_memories', 'id', 'bigint'),
    ('nexus_memory', 'semantic_memories', 'agent_id', 'text'),
    ('nexus_memory', 'semantic_memories', 'content', 'text'),
    ('nexus_memory', 'semantic_memories', 'metadata', 'jsonb'),
    ('nexus_memory', 'semantic_memories', 'tags', 'text[]'),
    ('nexus_memory', 'semantic_memories', 'importance', 'real'),
    ('nexus_memory', 'semantic_memories', 'source_episode_id', 'bigint'),
    ('nexus_memory', 'semantic_memories', 'created_at', 'timestamp with time zone'),
    ('nexus_memory', 'semantic_memories', 'updated_at', 'timestamp with time zone'),
    ('nexus_memory', 'semantic_memories', 'content_sha256', 'bytea'),
    ('nexus_memory', 'semantic_memories', 'content_tsv', 'tsvector'),
    ('nexus_memory', 'episode_embeddings', 'embedding', 'vector(384)'),
    ('nexus_memory', 'episode_embeddings', 'content_sha256', 'bytea'),
    ('nexus_memory', 'semantic_memory_embeddings', 'embedding', 'vector(384)'),
    ('nexus_memory', 'semantic_memory_embeddings', 'content_sha256', 'bytea'),
    ('nexus_memory', 'text_postings', 'agent_id', 'text'),
    ('nexus_memory', 'text_postings', 'lexeme', 'text'),
    ('nexus_memory', 'text_postings', 'kind', 'char'),
    ('nexus_memory', 'text_postings', 'doc_id', 'bigint'),
    ('nexus_memory', 'text_postings', 'tf', 'integer'),
    ('nexus_memory', 'text_postings', 'dl', 'integer'),
    ('nexus_memory', 'text_stats', 'agent_id', 'text'),
    ('nexus_memory', 'text_stats', 'slot', 'smallint'),
    ('nexus_memory', 'text_stats', 'docs', 'bigint'),
    ('nexus_memory', 'text_stats', 'tokens', 'bigint'),
    ('memory_system', 'agents', 'agent_id', 'text'),
    ('memory_system', 'agents', 'description', 'text'),
    ('memory_system', 'agents', 'created_at', 'timestamp with time zone'),
    ('consciousness', 'consciousness_checkpoints', 'id', 'bigint'),
    ('consciousness', 'consciousness_checkpoints', 'agent_id', 'text'),
    ('consciousness', 'consciousness_checkpoints', 'checkpoint_name', 'text'),
    ('consciousness', 'consciousness_checkpoints', 'state', 'jsonb'),
    ('consciousness', 'consciousness_checkpoints', 'metadata', 'jsonb'),
    ('consciousness', 'consciousness_checkpoints', 'created_at', 'timestamp with time zone'),
    ('consciousness', 'distributed_consensus', 'consensus_key', 'text'),
    ('consciousness', 'distributed_consensus', 'value', 'jsonb'),
    ('consciousness', 'distributed_consensus', 'version', 'bigint'),
    ('consciousness', 'distributed_consensus', 'updated_by', 'text'),
    ('consciousness', 'distributed_consensus', 'created_at', 'timestamp with time zone'),
    ('consciousness', 'distributed_consensus', 'updated_at', 'timestamp with time zone')
  ) AS v (s, t, c, ty);

-- the checksum and the search vector are computed by the database, never written by callers
SELECT is(a.attgenerated, 's', format('%s.%s is a stored generated column', a.attrelid::regclass, a.attname))
  FROM pg_catalog.pg_attribute AS a
 WHERE a.attrelid IN ('nexus_memory.zep_episodic_memory'::regclass,
                      'nexus_memory.semantic_memories'::regclass, 'nexus_memory.store_texts'::regclass)
   AND a.attname IN ('content_sha256', 'content_tsv')
 ORDER BY a.attrelid, a.attnum;

-- the agent-owned tables; agent_id is always set, defaults to the calling role and is registered
SELECT set_eq('SELECT tbl::text FROM agent_tables',
              ARRAY['nexus_memory.zep_episodic_memory', 'nexus_memory.working_memory_contexts',
                    'nexus_memory.semantic_memories', 'memory_system.agents',
                    'consciousness.consciousness_checkpoints', 'nexus_memory.episode_embeddings',
                    'nexus_memory.semantic_memory_embeddings', 'nexus_memory.text_postings',
                    'nexus_memory.text_stats', 'nexus_memory.store_items', 'nexus_memory.store_texts',
                    'nexus_memory.store_text_embeddings', 'memory_system.retention_rules'],
              'the agent-owned tables (with an agent_id column) are the expected thirteen');
SELECT is_empty(
    $$SELECT t.tbl FROM agent_tables AS t
       WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                          WHERE a.attrelid = t.tbl AND a.attname = 'agent_id' AND a.attnotnull)$$,
    'agent_id is NOT NULL in every agent-owned table');
-- the agent-owned tables an agent writes itself (not the registry, vectors or the text index)
CREATE TEMP VIEW agent_written_tables AS
    SELECT t.* FROM agent_tables AS t
     WHERE t.tbl <> 'memory_system.agents'::regclass AND NOT pg_temp.is_vector_table(t.tbl)
       AND NOT pg_temp.is_text_index_table(t.tbl);
SELECT is_empty(
    $$SELECT t.tbl, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS agent_id_default
        FROM agent_written_tables AS t
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = t.tbl AND a.attname = 'agent_id'
        LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE pg_catalog.pg_get_expr(d.adbin, d.adrelid) IS DISTINCT FROM 'CURRENT_USER'$$,
    'agent_id defaults to the calling role (CURRENT_USER) in every table an agent writes');
SELECT is_empty(
    $$SELECT t.tbl FROM agent_written_tables AS t
       WHERE NOT EXISTS (
             SELECT FROM pg_catalog.pg_constraint AS c
              WHERE c.conrelid = t.tbl AND c.contype = 'f'
                AND c.confrelid = 'memory_system.agents'::regclass
                AND c.conkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                                       WHERE a.attrelid = t.tbl AND a.attname = 'agent_id')]
                AND c.confkey = ARRAY[(SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                                        WHERE a.attrelid = 'memory_system.agents'::regclass
                                          AND a.attname = 'agent_id')])$$,
    'agent_id references the agents registry (a foreign key of its own) in every table an agent writes');
-- facts are deduplicated against the facts that hold, not by a unique text (db/tests/14_facts.sql)
SELECT col_is_unique('nexus_memory', 'semantic_memories', ARRAY['agent_id', 'fact_uuid'],
                     'a fact''s identity in exports is unique per agent (agent_id, fact_uuid)');

-- indexes ------------------------------------------------------------------------------------
SELECT ok(pg_temp.has_index_on(t::regclass, 'btree', ARRAY['agent_id', 'created_at']::name[]),
          format('%s has a B-tree index on (agent_id, created_at)', t))
  FROM unnest(ARRAY['nexus_memory.zep_episodic_memory', 'nexus_memory.semantic_memories',
                    'nexus_memory.working_memory_contexts']) AS t;
SELECT ok(pg_temp.has_index_on(t::regclass, 'gin', ARRAY[c]::name[]),
          format('%s has a GIN index on %s', t, c))
  FROM unnest(ARRAY['nexus_memory.zep_episodic_memory', 'nexus_memory.semantic_memories']) AS t
 CROSS JOIN unnest(ARRAY['content_tsv', 'metadata']) AS c;

-- every embedding column has its HNSW cosine index
SELECT is(count(*), 3::bigint, 'there are three embedding (vector) columns')
  FROM pg_catalog.pg_attribute AS a
  JOIN data_tables AS t ON t.tbl = a.attrelid
 WHERE a.atttypid = 'public.vector'::regtype AND NOT a.attisdropped;
SELECT is_empty(
    $$SELECT a.attrelid::regclass, a.attname
        FROM pg_catalog.pg_attribute AS a
        JOIN data_tables AS t ON t.tbl = a.attrelid
       WHERE a.atttypid = 'public.vector'::regtype AND NOT a.attisdropped
         AND NOT pg_temp.has_index_on(a.attrelid, 'hnsw', ARRAY[a.attname], 'vector_cosine_ops')$$,
    'every embedding column has an HNSW index with vector_cosine_ops');

-- vectors are list-partitioned by agent_id (0010): a partition, and an HNSW graph, per registered
-- agent in nexus_parts, and a DEFAULT partition
SELECT is((SELECT p.partstrat::text || ':' || array_to_string(
                      ARRAY(SELECT a.attname FROM unnest(p.partattrs::int2[]) AS k (attnum)
                              JOIN pg_catalog.pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = k.attnum), ',')
             FROM pg_catalog.pg_partitioned_table AS p WHERE p.partrelid = t::regclass),
          'l:agent_id', format('%s is list-partitioned by agent_id', t))
  FROM unnest(ARRAY['nexus_memory.episode_embeddings', 'nexus_memory.semantic_memory_embeddings',
                    'nexus_memory.store_text_embeddings']) AS t;
CREATE FUNCTION pg_temp.vector_partitions(p_table text) RETURNS text[] LANGUAGE sql AS $$
    SELECT ARRAY(SELECT c.relnamespace::regnamespace::text || '.' || c.relname || ' '
                        || pg_catalog.pg_get_expr(c.relpartbound, c.oid)
                   FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
                  WHERE i.inhparent = format('nexus_memory.%I', p_table)::regclass ORDER BY 1) $$;
CREATE FUNCTION pg_temp.expected_partitions(p_table text) RETURNS text[] LANGUAGE sql AS $$
    SELECT ARRAY(SELECT x FROM (
                  SELECT format('nexus_parts.%s_default DEFAULT', p_table) AS x
                  UNION ALL
                  SELECT format('nexus_parts.%s FOR VALUES IN (%L)',
                                memory_system._vector_partition(p_table, a.agent_id), a.agent_id)
                    FROM memory_system.agents AS a) AS e ORDER BY 1) $$;
SELECT is(pg_temp.vector_partitions(t), pg_temp.expected_partitions(t),
          format('%s has a partition per registered agent and a DEFAULT one, in nexus_parts', t))
  FROM unnest(ARRAY['episode_embeddings', 'semantic_memory_embeddings', 'store_text_embeddings']) AS t;
SELECT memory_system.agent_add('partition_probe');
SELECT is(pg_temp.vector_partitions(t), pg_temp.expected_partitions(t),
          format('registering an agent gives it a partition of %s', t))
  FROM unnest(ARRAY['episode_embeddings', 'semantic_memory_embeddings', 'store_text_embeddings']) AS t;
SELECT ok(pg_temp.vector_partitions('episode_embeddings') @> ARRAY[format(
              'nexus_parts.%s FOR VALUES IN (''partition_probe'')',
              memory_system._vector_partition('episode_embeddings', 'partition_probe'))],
          'the new agent''s partition holds its rows only');
SELECT is(obj_description(format('nexus_parts.%I', memory_system._vector_partition('episode_embeddings', 'partition_probe'))::regclass),
          'Vectors of agent partition_probe', 'the partition''s comment names its agent');
SELECT memory_system.agent_remove('partition_probe');
SELECT is(pg_temp.vector_partitions(t), pg_temp.expected_partitions(t),
          format('removing the agent drops its partition of %s', t))
  FROM unnest(ARRAY['episode_embeddings', 'semantic_memory_embeddings', 'store_text_embeddings']) AS t;
SELECT is(to_regclass(format('nexus_parts.%I', memory_system._vector_partition('episode_embeddings', 'partition_probe'))),
          NULL, 'no partition is left for a removed agent');
SELECT is_empty(
    $$SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits AS i
       WHERE i.inhparent IN ('nexus_memory.episode_embeddings'::regclass,
                             'nexus_memory.semantic_memory_embeddings'::regclass,
                             'nexus_memory.store_text_embeddings'::regclass)
         AND NOT pg_temp.has_index_on(i.inhrelid, 'hnsw', ARRAY['embedding']::name[], 'vector_cosine_ops')$$,
    'every vector partition has its own HNSW index (vector_cosine_ops)');
-- built denser than pgvector's default (0009): ef_construction 64 leaves recall@10 at 0.93 at 1M
SELECT is_empty(
    $$SELECT c.oid::regclass, c.reloptions FROM pg_catalog.pg_class AS c
       JOIN pg_catalog.pg_am AS am ON am.oid = c.relam AND am.amname = 'hnsw'
      WHERE c.relnamespace IN ('nexus_memory'::regnamespace, 'nexus_parts'::regnamespace)
        AND NOT c.reloptions @> ARRAY['m=16', 'ef_construction=128']$$,
    'every HNSW index (parents and partitions) is built with m = 16, ef_construction = 128');
SELECT is_empty(
    $$SELECT c.oid::regclass, c.relkind FROM pg_catalog.pg_class AS c
       WHERE c.relnamespace = 'nexus_parts'::regnamespace
         AND NOT (c.relkind = 'r' AND c.relispartition)
         AND NOT (c.relkind = 'i' AND EXISTS (SELECT FROM pg_catalog.pg_index AS i
                                              JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
                                              WHERE i.indexrelid = c.oid AND t.relispartition))$$,
    'schema nexus_parts holds only partitions and their indexes');
SELECT is((SELECT count(*) FROM pg_catalog.pg_class AS c
            WHERE c.relnamespace = 'nexus_parts'::regnamespace AND c.relkind = 'r'
              -- the read record's days (db/tests/19_retention_reads.sql)
              AND NOT c.relname ~ '^reads_(default|[0-9]{8})$'),
          3 * (1 + (SELECT count(*) FROM memory_system.agents)),
          'schema nexus_parts holds the vector partitions (three per agent, three DEFAULT) and no other table');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = 'nexus_parts'::regnamespace
      UNION ALL
      SELECT t.oid::regtype::text FROM pg_catalog.pg_type AS t
       WHERE t.typnamespace = 'nexus_parts'::regnamespace AND t.typrelid = 0 AND t.typelem = 0$$,
    'schema nexus_parts has no functions or free-standing types');

-- every unique index (primary keys included) of an agent-owned table keys on agent_id,
-- so each table can later be distributed by agent_id
SELECT is_empty(
    $$SELECT i.indexrelid::regclass, t.tbl
        FROM agent_tables AS t
        JOIN pg_catalog.pg_index AS i ON i.indrelid = t.tbl
       WHERE i.indisunique AND NOT 'agent_id' = ANY (pg_temp.index_columns(i.indexrelid))$$,
    'every unique index of an agent-owned table includes agent_id in its key');

-- row-level security -------------------------------------------------------------------------
SELECT is_empty(
    $$SELECT tbl FROM agent_tables
       WHERE tbl <> 'memory_system.agents'::regclass AND NOT (relrowsecurity AND relforcerowsecurity)$$,
    'every agent-owned table but the registry has row-level security forced');
SELECT ok(relrowsecurity AND relforcerowsecurity, 'distributed_consensus has row-level security forced')
  FROM data_tables WHERE tbl = 'consciousness.distributed_consensus'::regclass;
SELECT ok(relrowsecurity AND NOT relforcerowsecurity,
          'memory_system.agents has row-level security enabled and deliberately not forced')
  FROM data_tables WHERE tbl = 'memory_system.agents'::regclass;

-- nothing of ours in public ------------------------------------------------------------------
SELECT tables_are('public', ARRAY[]::name[], 'schema public has no tables');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class AS c
       WHERE c.relnamespace = 'public'::regnamespace
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype = 'e')
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                          WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = c.reltype
                            AND d.deptype = 'e')$$,
    'every relation in public belongs to an extension');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'public'::regnamespace
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                          WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                            AND d.deptype = 'e')$$,
    'every function in public belongs to an extension');
SELECT is_empty(
    $$SELECT t.typname FROM pg_catalog.pg_type AS t
       WHERE t.typnamespace = 'public'::regnamespace
         -- array types and row types depend (internally) on their element or relation
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                          WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid
                            AND d.deptype IN ('e', 'i'))$$,
    'every type in public belongs to an extension');

-- functions ----------------------------------------------------------------------------------
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace IN ('nexus'::regnamespace, 'memory_system'::regnamespace)
         AND obj_description(p.oid, 'pg_proc') IS NULL$$,
    'every function of nexus and memory_system has a COMMENT');

-- the API runs with the caller's rights; list here any function that must be SECURITY DEFINER
CREATE TEMP TABLE api_definers (sig text);
SELECT is_empty(
    $$SELECT p.oid::regprocedure, CASE WHEN p.prosecdef THEN 'DEFINER' ELSE 'INVOKER' END
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'nexus'::regnamespace
         AND p.prosecdef <> (p.oid::regprocedure::text IN (SELECT sig FROM api_definers))$$,
    'every function of nexus is SECURITY INVOKER (but those listed in api_definers)');

-- any SECURITY DEFINER function pins its search_path
SELECT is_empty(
    $$SELECT p.oid::regprocedure, p.proconfig FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace IN ('nexus'::regnamespace, 'nexus_memory'::regnamespace,
                                'memory_system'::regnamespace, 'consciousness'::regnamespace)
         AND p.prosecdef
         AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
    'every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp');

SELECT * FROM finish();
ROLLBACK;
