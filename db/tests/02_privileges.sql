-- The whole permission matrix, written from db/grants.sql. Each check runs over every object of
-- the schemas (from the catalogs), so a new table or function gets no privilege unless it is
-- added to the expected lists below. A check over every object is one test that names what
-- breaks it, so the plan counts this file's tests, not the schema's objects.
BEGIN;
SELECT plan(119);

-- what is checked ----------------------------------------------------------------------------
CREATE TEMP TABLE roles (role name PRIMARY KEY);
INSERT INTO roles VALUES ('nexus_agent'), ('nexus_app'), ('nexus_worker'), ('nexus_ro');

CREATE TEMP VIEW data_tables AS
    SELECT c.oid::regclass AS tbl, c.relacl
      FROM pg_catalog.pg_class AS c
     WHERE c.relnamespace IN ('nexus'::regnamespace, 'nexus_memory'::regnamespace,
                              'memory_system'::regnamespace, 'consciousness'::regnamespace)
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f');
-- read by the checks below that run as each role
GRANT SELECT ON data_tables TO PUBLIC;

-- the statements of p_sqls that are not refused for want of privilege (42501), each with what
-- happened instead; each runs as the current role in a subtransaction undone whatever it did
CREATE FUNCTION pg_temp.not_refused(p_sqls text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    v_sql text;
BEGIN
    FOREACH v_sql IN ARRAY p_sqls LOOP
        BEGIN
            EXECUTE v_sql;
            RAISE EXCEPTION 'allowed';
        EXCEPTION
            WHEN insufficient_privilege THEN NULL;
            WHEN OTHERS THEN RETURN NEXT v_sql || ': ' || SQLERRM;
        END;
    END LOOP;
END
$$;

CREATE TEMP VIEW data_functions AS
    SELECT p.oid, p.oid::regprocedure::text AS sig, p.proacl
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace IN ('nexus'::regnamespace, 'nexus_memory'::regnamespace,
                              'memory_system'::regnamespace, 'consciousness'::regnamespace);

-- what is expected (db/grants.sql) -----------------------------------------------------------
-- table-level privileges; anything not listed is expected to be absent
CREATE TEMP TABLE expected_table_privs (tbl text, role name, priv text);
INSERT INTO expected_table_privs VALUES
    ('nexus_memory.zep_episodic_memory',        'nexus_agent', 'SELECT'),
    ('nexus_memory.zep_episodic_memory',        'nexus_agent', 'DELETE'),
    ('nexus_memory.semantic_memories',          'nexus_agent', 'SELECT'),
    ('nexus_memory.semantic_memories',          'nexus_agent', 'DELETE'),
    ('nexus_memory.working_memory_contexts',    'nexus_agent', 'SELECT'),
    ('nexus_memory.working_memory_contexts',    'nexus_agent', 'DELETE'),
    ('consciousness.consciousness_checkpoints', 'nexus_agent', 'SELECT'),
    ('consciousness.consciousness_checkpoints', 'nexus_agent', 'DELETE'),
    ('consciousness.distributed_consensus',     'nexus_agent', 'SELECT'),
    ('memory_system.agents',                    'nexus_agent', 'SELECT'),
    ('memory_system.spaces',                    'nexus_agent', 'SELECT'),
    ('nexus_memory.zep_episodic_memory',        'nexus_ro',    'SELECT'),
    ('nexus_memory.semantic_memories',          'nexus_ro',    'SELECT'),
    ('nexus_memory.working_memory_contexts',    'nexus_ro',    'SELECT'),
    ('consciousness.distributed_consensus',     'nexus_ro',    'SELECT'),
    ('memory_system.agents',                    'nexus_ro',    'SELECT'),
    ('memory_system.spaces',                    'nexus_ro',    'SELECT'),
    ('nexus_memory.episode_embeddings',         'nexus_agent', 'SELECT'),
    ('nexus_memory.semantic_memory_embeddings', 'nexus_agent', 'SELECT'),
    ('nexus_memory.episode_embeddings',         'nexus_ro',    'SELECT'),
    ('nexus_memory.semantic_memory_embeddings', 'nexus_ro',    'SELECT'),
    ('memory_system.embeddings_queue',          'nexus_ro',    'SELECT'),
    ('memory_system.worker_heartbeats',         'nexus_ro',    'SELECT'),
    ('memory_system.settings',                  'nexus_ro',    'SELECT'),
    -- imports: analysts read their state, ledger and rejects (what they hold, ro reads anyway)
    ('memory_system.imports',                   'nexus_ro',    'SELECT'),
    ('memory_system.import_rows',               'nexus_ro',    'SELECT'),
    ('memory_system.import_rejects',            'nexus_ro',    'SELECT'),
    -- the cache's outbox: analysts may read it (ids and agent names, as in the tables they read)
    ('memory_system.cache_outbox',              'nexus_ro',    'SELECT'),
    ('memory_system.embeddings_queue',          'nexus_worker', 'SELECT'),
    ('memory_system.worker_heartbeats',         'nexus_worker', 'SELECT'),
    ('memory_system.settings',                  'nexus_worker', 'SELECT'),
    -- search: agents read their own postings and corpus statistics, and the model settings
    ('nexus_memory.text_postings',              'nexus_agent', 'SELECT'),
    ('nexus_memory.text_stats',                 'nexus_agent', 'SELECT'),
    ('memory_system.settings',                  'nexus_agent', 'SELECT'),
    ('nexus_memory.text_postings',              'nexus_ro',    'SELECT'),
    ('nexus_memory.text_stats',                 'nexus_ro',    'SELECT'),
    -- the store (LangGraph BaseStore): agents own their items and texts, read their vectors
    ('nexus_memory.store_items',                'nexus_agent', 'SELECT'),
    ('nexus_memory.store_items',                'nexus_agent', 'DELETE'),
    ('nexus_memory.store_texts',                'nexus_agent', 'SELECT'),
    ('nexus_memory.store_texts',                'nexus_agent', 'DELETE'),
    ('nexus_memory.store_text_embeddings',      'nexus_agent', 'SELECT'),
    ('nexus_memory.store_items',                'nexus_ro',    'SELECT'),
    ('nexus_memory.store_texts',                'nexus_ro',    'SELECT'),
    ('nexus_memory.store_text_embeddings',      'nexus_ro',    'SELECT');

-- column-level privileges, on top of the table-level ones (which cover every column)
CREATE TEMP TABLE expected_column_privs (tbl text, role name, priv text, cols text[]);
INSERT INTO expected_column_privs VALUES
    ('nexus_memory.zep_episodic_memory', 'nexus_agent', 'INSERT',
     '{agent_id,episode_uuid,session_id,action_type,source,content,metadata,tags,importance,valid_at,created_at}'),
    ('nexus_memory.zep_episodic_memory', 'nexus_agent', 'UPDATE',
     '{session_id,action_type,source,content,metadata,tags,importance,valid_at}'),
    ('nexus_memory.semantic_memories', 'nexus_agent', 'INSERT',
     '{agent_id,content,metadata,tags,importance,source_episode_id,created_at,fact_key,valid_from,valid_to,ended_by,ended_at,superseded_by}'),
    ('nexus_memory.semantic_memories', 'nexus_agent', 'UPDATE',
     '{content,metadata,tags,importance,source_episode_id,valid_from,valid_to,ended_by,ended_at,superseded_by}'),
    ('nexus_memory.working_memory_contexts', 'nexus_agent', 'INSERT',
     '{agent_id,context_key,value,expires_at}'),
    ('nexus_memory.working_memory_contexts', 'nexus_agent', 'UPDATE', '{value,expires_at}'),
    ('consciousness.consciousness_checkpoints', 'nexus_agent', 'INSERT',
     '{agent_id,checkpoint_name,state,metadata}'),
    ('consciousness.distributed_consensus', 'nexus_agent', 'INSERT',
     '{consensus_key,value,updated_by}'),
    ('consciousness.distributed_consensus', 'nexus_agent', 'UPDATE', '{value,version,updated_by}'),
    ('nexus_memory.store_items', 'nexus_agent', 'INSERT',
     '{agent_id,namespace,key,value,created_at,updated_at,ttl,expires_at}'),
    ('nexus_memory.store_items', 'nexus_agent', 'UPDATE', '{value,ttl,expires_at}'),
    ('nexus_memory.store_texts', 'nexus_agent', 'INSERT', '{agent_id,item_id,path,content}'),
    ('nexus_memory.store_texts', 'nexus_agent', 'UPDATE', '{content}'),
    ('consciousness.consciousness_checkpoints', 'nexus_ro', 'SELECT',
     '{id,agent_id,checkpoint_name,metadata,created_at}'),
    -- the state of an agent's own queue items (row-level security), for nexus.memory_stats
    ('memory_system.embeddings_queue', 'nexus_agent', 'SELECT',
     '{id,agent_id,source_table,source_id,state,retry_count,last_error,enqueued_at,processed_at}'),
    -- agents' bearer tokens: analysts see all but the hash
    ('memory_system.agent_tokens', 'nexus_ro', 'SELECT',
     '{token_id,agent_id,label,created_at,expires_at,revoked_at}');

-- functions each role may execute; no other
CREATE TEMP TABLE expected_execute (role name, sig text);
INSERT INTO expected_execute VALUES
    ('nexus_agent', 'nexus.current_agent()'),
    ('nexus_agent', 'memory_system._check_agent(text)'),
    ('nexus_agent', 'memory_system._check_size(text,bigint,bigint)'),
    ('nexus_agent', 'memory_system._check_json_object(text,jsonb,bigint)'),
    ('nexus_agent', 'memory_system._check_tags(text[])'),
    ('nexus_agent', 'memory_system._embedding_model()'),
    ('nexus_agent', 'memory_system._embedded(text,text,bigint,bytea,text)'),
    ('nexus_agent', 'memory_system._embedded_version(text,text,bigint,bytea,text)'),
    ('nexus_agent', 'memory_system._vector_partition(text,text)'),
    -- spaces (docs/spaces.md): who reads and writes which, called by the policies and the API
    ('nexus_agent', 'memory_system._is_member(text)'),
    ('nexus_agent', 'memory_system._member_spaces(boolean)'),
    ('nexus_agent', 'memory_system._readable_ids()'),
    ('nexus_agent', 'memory_system._writable_ids()'),
    ('nexus_agent', 'memory_system._own_id()'),
    ('nexus_agent', 'memory_system._space_id(text,boolean)'),
    ('nexus_agent', 'memory_system._write_target(text)'),
    ('nexus_agent', 'memory_system._read_target(text)'),
    ('nexus_agent', 'memory_system._space_row(text)'),
    ('nexus_agent', 'memory_system._space_owned(text,text)'),
    ('nexus_agent', 'memory_system._space_rights(text)'),
    ('nexus_agent', 'memory_system._space_grant_roles(memory_system.spaces,text,text,boolean)'),
    ('nexus_agent', 'memory_system._space_revoke_role(text,text)'),
    ('nexus_agent', 'nexus._search_scope(text[],text)'),
    ('nexus_agent', 'nexus.spaces()'),
    ('nexus_agent', 'nexus.space_grant(text,text,text)'),
    ('nexus_agent', 'nexus.space_revoke(text,text)'),
    ('nexus_agent', 'memory_system._store_check_namespace(text[],text,boolean)'),
    -- facts (docs/facts.md)
    ('nexus_agent', 'memory_system._check_fact_key(text)'),
    ('nexus_agent', 'memory_system._fact_text_sha256(text)'),
    ('nexus_agent', 'memory_system._fact_lock(text,text)'),
    ('nexus_agent', 'memory_system._fact_rows(text,bigint[],timestamp with time zone,text)'),
    ('nexus_agent', 'memory_system._fact_to_end(bigint,timestamp with time zone)'),
    ('nexus_agent', 'memory_system._fact_check_input(text,jsonb,text[],real,text,bigint)'),
    ('nexus_agent', 'memory_system._fact_merge(bigint,jsonb,text[],real,bigint)'),
    ('nexus_agent', 'memory_system._as_of(text)'),
    ('nexus_worker', 'memory_system.claim_batch(text,integer,interval,text)'),
    ('nexus_worker', 'memory_system.schema_migration()'),
    ('nexus_worker', 'memory_system.complete_batch(text,bigint[],vector[],bytea[],text,text)'),
    ('nexus_worker', 'memory_system.skip_batch(text,bigint[],text)'),
    ('nexus_worker', 'memory_system.fail_item(text,bigint,text)'),
    ('nexus_worker', 'memory_system.heartbeat(text,interval,jsonb)'),
    ('nexus_worker', 'memory_system.release(text)'),
    ('nexus_worker', 'memory_system.expire_leases(text[])'),
    ('nexus_worker', 'memory_system.reap_expired_leases()'),
    ('nexus_worker', 'memory_system.prune_done(interval)'),
    ('nexus_worker', 'memory_system.queue_stats()'),
    ('nexus_worker', 'memory_system.purge_expired_working_memory(integer)'),
    ('nexus_worker', 'memory_system.purge_expired_store_items(integer)'),
    -- the Redis mirror (sidecar/cache.py)
    ('nexus_worker', 'memory_system.cache_working_memory(bigint[])'),
    ('nexus_worker', 'memory_system.cache_working_memory_range(bigint,bigint)'),
    ('nexus_worker', 'memory_system.cache_range_checksums(integer)'),
    ('nexus_worker', 'memory_system.cache_recent_episodes(text[],integer)'),
    ('nexus_worker', 'memory_system.cache_agents()'),
    ('nexus_worker', 'memory_system.cache_outbox_drain(integer)'),
    ('nexus_worker', 'memory_system.cache_outbox_clear()'),
    ('nexus_ro', 'memory_system.queue_stats()'),
    -- the MCP server maps a bearer token to its agent
    ('nexus_app', 'memory_system.token_agent(bytea)'),
    -- the agent API: every function of schema nexus
    ('nexus_agent', 'nexus.record_episode(text,text,jsonb,text[],real,text,text,timestamp with time zone,text)'),
    ('nexus_agent', 'nexus.get_episode(bigint)'),
    ('nexus_agent', 'nexus.update_episode(bigint,text,jsonb,text[],real,text,text)'),
    ('nexus_agent', 'nexus.delete_episode(bigint)'),
    ('nexus_agent', 'nexus.recent_episodes(integer,text,timestamp with time zone,timestamp with time zone,text[],timestamp with time zone,bigint,text)'),
    ('nexus_agent', 'nexus.remember_fact(text,jsonb,text[],real,bigint,text,bigint,timestamp with time zone,text)'),
    ('nexus_agent', 'nexus.get_fact(bigint,text,timestamp with time zone,boolean,text)'),
    ('nexus_agent', 'nexus.invalidate_fact(bigint,timestamp with time zone)'),
    ('nexus_agent', 'nexus.fact_history(bigint,text,text)'),
    ('nexus_agent', 'nexus.delete_fact(bigint)'),
    ('nexus_agent', 'nexus.working_memory_set(text,jsonb,interval)'),
    ('nexus_agent', 'nexus.working_memory_get(text)'),
    ('nexus_agent', 'nexus.working_memory_delete(text)'),
    ('nexus_agent', 'nexus.working_memory_keys(text)'),
    ('nexus_agent', 'nexus.save_checkpoint(jsonb,text,jsonb)'),
    ('nexus_agent', 'nexus.load_checkpoint(text)'),
    ('nexus_agent', 'nexus.list_checkpoints(text,integer)'),
    ('nexus_agent', 'nexus.consensus_read(text)'),
    ('nexus_agent', 'nexus.consensus_cas(text,bigint,jsonb)'),
    ('nexus_agent', 'nexus.memory_stats(text)'),
    ('nexus_agent', 'nexus.text_candidates(text,text[],integer,integer,double precision,double precision,timestamp with time zone,boolean,text[])'),
    ('nexus_agent', 'nexus.memory_search(text,vector,integer,text[],text,timestamp with time zone,timestamp with time zone,text[],jsonb,text,integer,double precision,double precision,double precision,interval,integer,integer,double precision,integer,timestamp with time zone,boolean,text[],text)'),
    ('nexus_agent', 'nexus.memory_similar(text,bigint,integer,text[],integer,timestamp with time zone,boolean)'),
    ('nexus_agent', 'nexus._memory_search_text(text,"char"[],text,integer,integer,text,timestamp with time zone,timestamp with time zone,text[],jsonb,timestamp with time zone,text[])'),
    ('nexus_agent', 'nexus._session_neighbours(bigint,text,integer,text)'),
    ('nexus_agent', 'nexus._session_context(bigint,text,integer,text)'),
    ('nexus_agent', 'nexus._memory_search_vector(vector,"char"[],integer,text,timestamp with time zone,timestamp with time zone,text[],jsonb,timestamp with time zone,text[])'),
    ('nexus_agent', 'nexus._search_valid_time(timestamp with time zone,boolean)'),
    ('nexus_agent', 'nexus._memory_search_check_args(text,vector,integer,text[],text,timestamp with time zone,timestamp with time zone,text[],jsonb,text,integer,double precision,double precision,double precision,interval,integer,double precision,integer)'),
    ('nexus_agent', 'nexus._neighbour_credit("char"[],bigint[],"char"[],bigint[],double precision,double precision,integer,double precision,text[])'),
    ('nexus_agent', 'nexus._check_query_embedding(vector)'),
    ('nexus_agent', 'nexus._memory_search_fuse(text,tsquery,"char"[],bigint[],double precision[],"char"[],bigint[],double precision[],bigint[],double precision[],integer,integer,double precision,double precision,double precision,interval,integer,text[])'),
    ('nexus_agent', 'nexus._search_kinds(text[])'),
    ('nexus_agent', 'nexus._or_tsquery(text)'),
    ('nexus_agent', 'nexus._newer_first(bigint[],double precision[],integer,text[])'),
    ('nexus_agent', 'nexus.store_put(text[],text,jsonb,jsonb,interval,text)'),
    ('nexus_agent', 'nexus.store_get(text[],text,boolean,text)'),
    ('nexus_agent', 'nexus.store_delete(text[],text,text)'),
    ('nexus_agent', 'nexus.store_search(text[],text,vector,jsonb,integer,integer,boolean,integer,integer,integer,text)'),
    ('nexus_agent', 'nexus._store_search_text(text,boolean,text[],text[],timestamp with time zone,text[],text[],jsonb[],integer,integer,integer,text)'),
    ('nexus_agent', 'nexus._store_search_vector(vector,boolean,text[],text[],timestamp with time zone,text[],text[],jsonb[],integer,text)'),
    ('nexus_agent', 'nexus._store_search_check_args(text[],text,integer,integer,integer,integer,integer)'),
    ('nexus_agent', 'nexus.store_list_namespaces(text[],text[],integer,integer,integer,text)'),
    ('nexus_agent', 'nexus._store_filter(jsonb)'),
    ('nexus_agent', 'nexus._store_compare(jsonb,jsonb)'),
    ('nexus_agent', 'nexus._store_match(jsonb,text[],text[],jsonb[])'),
    ('nexus_agent', 'nexus._store_prefix_bound(text[])');
-- forgetting by filter (db/functions/api/forget.sql)
INSERT INTO expected_execute VALUES
    ('nexus_agent', 'nexus.forget(text[],text[],text,timestamp with time zone,timestamp with time zone,jsonb,text,boolean,bigint)'),
    ('nexus_agent', 'nexus._forget_batch(text,"char",bigint,integer,text,timestamp with time zone,timestamp with time zone,text[],jsonb,bigint,boolean)'),
    ('nexus_agent', 'nexus._memory_filter(timestamp with time zone,text[],jsonb,timestamp with time zone,timestamp with time zone,text[],jsonb)'),
    ('nexus_agent', 'memory_system._cache_mirror_leading()');

-- retention rules and the read record (docs/privacy.md): an agent sets its own rules and reads
-- its own reads (row-level security); only memory_system._record_read writes reads
INSERT INTO expected_table_privs VALUES
    ('memory_system.retention_rules', 'nexus_agent', 'SELECT'),
    ('memory_system.retention_rules', 'nexus_agent', 'DELETE'),
    ('memory_system.retention_rules', 'nexus_ro',    'SELECT'),
    ('memory_system.reads',           'nexus_agent', 'SELECT'),
    ('memory_system.reads',           'nexus_ro',    'SELECT'),
    ('memory_system.read_settings',   'nexus_ro',    'SELECT');
INSERT INTO expected_column_privs VALUES
    ('memory_system.retention_rules', 'nexus_agent', 'INSERT', '{agent_id,kind,older_than,importance_below}'),
    ('memory_system.retention_rules', 'nexus_agent', 'UPDATE', '{older_than,importance_below,set_by,updated_at}');
INSERT INTO expected_execute VALUES
    ('nexus_agent', 'memory_system.retention_set(text,text,interval,real,boolean)'),
    ('nexus_agent', 'memory_system.retention_remove(text,text)'),
    ('nexus_agent', 'memory_system.retention_list(text)'),
    ('nexus_agent', 'memory_system._retention_check(text,interval,real)'),
    ('nexus_agent', 'memory_system._retention_matching(text,text,interval,real)'),
    ('nexus_agent', 'memory_system._record_read(text,text,text[],bigint[],text)'),
    ('nexus_agent', 'nexus.retention_set(text,interval,real,boolean)'),
    ('nexus_agent', 'nexus.retention_remove(text)'),
    ('nexus_agent', 'nexus.retention_rules()'),
    ('nexus_agent', 'nexus.read_log(text,timestamp with time zone,timestamp with time zone,integer)'),
    ('nexus_worker', 'memory_system.retention_sweep(integer)'),
    ('nexus_ro', 'memory_system.reads_status()'),
    ('nexus_ro', 'memory_system.reads_of(text,timestamp with time zone,timestamp with time zone,integer)');

-- schema privileges
CREATE TEMP TABLE expected_schema_privs (schema_name name, role name, priv text);
INSERT INTO expected_schema_privs VALUES
    ('public', 'nexus_agent', 'USAGE'), ('public', 'nexus_app', 'USAGE'),
    ('public', 'nexus_worker', 'USAGE'), ('public', 'nexus_ro', 'USAGE'),
    ('nexus', 'nexus_agent', 'USAGE'), ('nexus', 'nexus_ro', 'USAGE'),
    ('nexus_memory', 'nexus_agent', 'USAGE'),
    ('nexus_memory', 'nexus_ro', 'USAGE'),
    ('consciousness', 'nexus_agent', 'USAGE'),
    ('consciousness', 'nexus_ro', 'USAGE'),
    ('memory_system', 'nexus_agent', 'USAGE'), ('memory_system', 'nexus_worker', 'USAGE'),
    ('memory_system', 'nexus_ro', 'USAGE'), ('memory_system', 'nexus_app', 'USAGE');

-- the expected lists name only objects that exist (a renamed object must not pass silently)
SELECT is_empty(
    $$SELECT tbl FROM expected_table_privs UNION SELECT tbl FROM expected_column_privs
      EXCEPT SELECT tbl::text FROM data_tables$$,
    'the expected table privileges name existing tables');
SELECT is_empty(
    $$SELECT e.tbl, c FROM expected_column_privs AS e CROSS JOIN unnest(e.cols) AS c
       WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                          WHERE a.attrelid = e.tbl::regclass AND a.attname = c
                            AND a.attnum > 0 AND NOT a.attisdropped)$$,
    'the expected column privileges name existing columns');
SELECT is_empty('SELECT sig FROM expected_execute EXCEPT SELECT sig FROM data_functions',
                'the expected EXECUTE grants name existing functions');

-- roles --------------------------------------------------------------------------------------
SELECT has_role(role) FROM roles ORDER BY role;
SELECT is_superuser('nexus_superuser');
SELECT ok(NOT rolsuper AND NOT rolcreaterole AND NOT rolbypassrls,
          format('%s is not superuser, cannot create roles, does not bypass RLS', rolname))
  FROM pg_catalog.pg_roles WHERE rolname IN (SELECT role FROM roles) ORDER BY rolname;
SELECT ok(NOT rolcanlogin, 'nexus_agent is a group role (NOLOGIN)')
  FROM pg_catalog.pg_roles WHERE rolname = 'nexus_agent';

-- table privileges ---------------------------------------------------------------------------
SELECT set_eq(
    $$SELECT t.tbl::text, r.role, p.priv
        FROM data_tables AS t
       CROSS JOIN roles AS r
       CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                               'TRIGGER']) AS p (priv)
       WHERE has_table_privilege(r.role, t.tbl, p.priv)$$,
    'SELECT tbl, role, priv FROM expected_table_privs',
    'each role has exactly the expected table privileges, on every table');

-- PUBLIC: no table-level entry at all, and no column-level one
SELECT is_empty(
    $$SELECT t.tbl, a.privilege_type FROM data_tables AS t CROSS JOIN aclexplode(t.relacl) AS a
       WHERE a.grantee = 0$$,
    'PUBLIC has no privilege on any table');
SELECT is_empty(
    $$SELECT a.attrelid::regclass, a.attname
        FROM pg_catalog.pg_attribute AS a
        JOIN data_tables AS t ON t.tbl = a.attrelid
       CROSS JOIN aclexplode(a.attacl) AS x
       WHERE x.grantee = 0$$,
    'PUBLIC has no column privilege on any table');

-- column privileges: for each table, role and privilege, the exact set of columns it reaches
SELECT is_empty(
    $$SELECT role, priv, tbl, actual, expected
  FROM (SELECT r.role, t.tbl, p.priv,
               ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = t.tbl AND a.attnum > 0 AND NOT a.attisdropped
                        AND has_column_privilege(r.role, t.tbl, a.attnum, p.priv)
                      ORDER BY 1) AS actual,
               CASE WHEN EXISTS (SELECT FROM expected_table_privs AS e
                                  WHERE e.tbl = t.tbl::text AND e.role = r.role AND e.priv = p.priv)
                    THEN ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
                                WHERE a.attrelid = t.tbl AND a.attnum > 0 AND NOT a.attisdropped
                                ORDER BY 1)
                    ELSE ARRAY(SELECT c FROM expected_column_privs AS e CROSS JOIN unnest(e.cols) AS c
                                WHERE e.tbl = t.tbl::text AND e.role = r.role AND e.priv = p.priv
                                ORDER BY 1)
               END AS expected
          FROM data_tables AS t
         CROSS JOIN roles AS r
         CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p (priv)) AS m
 WHERE actual <> expected$$,
    'each role reaches exactly the expected columns of every table, for each privilege');

-- the rules behind the matrix, spelled out
SELECT ok(NOT has_table_privilege('nexus_agent', 'nexus_memory.zep_episodic_memory', 'INSERT')
          AND has_any_column_privilege('nexus_agent', 'nexus_memory.zep_episodic_memory', 'INSERT'),
          'agents insert episodes through column grants only');
SELECT ok(NOT has_table_privilege('nexus_agent', 'nexus_memory.zep_episodic_memory', 'UPDATE')
          AND has_any_column_privilege('nexus_agent', 'nexus_memory.zep_episodic_memory', 'UPDATE'),
          'agents update episodes through column grants only');
SELECT ok(NOT has_column_privilege('nexus_worker', format('nexus_memory.%I', t), 'content', 'SELECT'),
          format('nexus_worker cannot SELECT %s.content', t))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories']) AS t;
SELECT ok(NOT has_column_privilege('nexus_worker', format('nexus_memory.%I', t), 'content', 'UPDATE'),
          format('nexus_worker cannot UPDATE %s.content', t))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories']) AS t;
SELECT ok(NOT has_any_column_privilege('nexus_worker', format('nexus_memory.%I', t), p)
          AND NOT has_table_privilege('nexus_worker', format('nexus_memory.%I', t), 'DELETE'),
          format('nexus_worker has no %s on any column of %s, nor DELETE: vectors go through complete_batch', p, t))
  FROM unnest(ARRAY['zep_episodic_memory', 'semantic_memories', 'episode_embeddings',
                    'semantic_memory_embeddings', 'store_items', 'store_texts',
                    'store_text_embeddings']) AS t
 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p;
SELECT ok(NOT has_column_privilege('nexus_ro', 'consciousness.consciousness_checkpoints', 'state', 'SELECT'),
          'nexus_ro cannot SELECT consciousness_checkpoints.state');
SELECT ok(has_column_privilege('nexus_ro', 'consciousness.consciousness_checkpoints', 'agent_id', 'SELECT'),
          'nexus_ro can SELECT consciousness_checkpoints.agent_id');
SELECT ok(NOT has_any_column_privilege('nexus_agent', t, p),
          format('agents cannot %s %s', p, t))
  FROM unnest(ARRAY['nexus_memory.episode_embeddings', 'nexus_memory.semantic_memory_embeddings',
                    'nexus_memory.store_text_embeddings']) AS t
 CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE']) AS p;
SELECT is_empty(
    $$SELECT t.tbl FROM data_tables AS t
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = t.tbl AND a.attname = 'agent_id'
                                         AND NOT a.attisdropped
       WHERE has_column_privilege('nexus_agent', t.tbl, a.attnum, 'UPDATE')$$,
    'agents cannot UPDATE agent_id, in any table');

-- sequences (identity columns need none) -----------------------------------------------------
SELECT is_empty(
    $$SELECT r.role, c.oid::regclass, p.priv
        FROM pg_catalog.pg_class AS c
       CROSS JOIN roles AS r
       CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p (priv)
       WHERE c.relkind = 'S'
         AND c.relnamespace IN ('nexus'::regnamespace, 'nexus_memory'::regnamespace,
                                'memory_system'::regnamespace, 'consciousness'::regnamespace)
         AND has_sequence_privilege(r.role, c.oid, p.priv)$$,
    'no role has any privilege on a sequence');

-- functions ----------------------------------------------------------------------------------
SELECT set_eq(
    $$SELECT r.role, f.sig FROM data_functions AS f CROSS JOIN roles AS r
       WHERE has_function_privilege(r.role, f.oid, 'EXECUTE')$$,
    'SELECT role, sig FROM expected_execute',
    'each role may execute exactly the expected functions');
-- a NULL ACL means the default, which lets PUBLIC execute
SELECT is_empty(
    $$SELECT sig FROM data_functions
       WHERE proacl IS NULL OR EXISTS (SELECT FROM aclexplode(proacl) AS a WHERE a.grantee = 0)$$,
    'PUBLIC may not execute any function');

-- schemas ------------------------------------------------------------------------------------
SELECT set_eq(
    $$SELECT s.schema_name, r.role, p.priv
        FROM unnest(ARRAY['public', 'nexus', 'nexus_memory', 'memory_system', 'consciousness',
                          'nexus_parts']::name[]) AS s (schema_name)
       CROSS JOIN roles AS r
       CROSS JOIN unnest(ARRAY['USAGE', 'CREATE']) AS p (priv)
       WHERE has_schema_privilege(r.role, s.schema_name, p.priv)$$,
    'SELECT schema_name, role, priv FROM expected_schema_privs',
    'each role has exactly the expected privileges on our schemas and public');
SELECT ok(n.nspacl IS NOT NULL
          AND NOT EXISTS (SELECT FROM aclexplode(n.nspacl) AS a WHERE a.grantee = 0),
          format('PUBLIC has no privilege on schema %s', n.nspname))
  FROM pg_catalog.pg_namespace AS n
 WHERE n.nspname IN ('public', 'nexus', 'nexus_memory', 'memory_system', 'consciousness', 'nexus_parts')
 ORDER BY n.nspname;

-- partitions (schema nexus_parts): nobody but the owner; everyone goes through the parent tables
SELECT is((SELECT count(*) FROM pg_catalog.pg_class AS c
            WHERE c.relnamespace = 'nexus_parts'::regnamespace AND c.relkind = 'r'
              -- and the read record's days, checked below as well (db/tests/19_retention_reads.sql)
              AND NOT c.relname ~ '^reads_(default|[0-9]{8})$'),
          3 * (1 + (SELECT count(*) FROM memory_system.agents)),
          'the partitions checked below are the vector partitions (three per agent, three DEFAULT)');
SELECT is_empty(
    $$SELECT c.oid::regclass, r.role, p.priv
        FROM pg_catalog.pg_class AS c
       CROSS JOIN roles AS r
       CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                               'TRIGGER']) AS p (priv)
       WHERE c.relnamespace = 'nexus_parts'::regnamespace AND c.relkind = 'r'
         AND CASE WHEN p.priv IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                  THEN has_any_column_privilege(r.role, c.oid, p.priv)
                  ELSE has_table_privilege(r.role, c.oid, p.priv) END$$,
    'no role has any table or column privilege on a partition in nexus_parts');
SELECT is_empty(
    $$SELECT c.oid::regclass, x.grantee::regrole, x.privilege_type
        FROM pg_catalog.pg_class AS c CROSS JOIN aclexplode(c.relacl) AS x
       WHERE c.relnamespace = 'nexus_parts'::regnamespace AND x.grantee <> c.relowner
      UNION ALL
      SELECT a.attrelid::regclass, x.grantee::regrole, x.privilege_type
        FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
       CROSS JOIN aclexplode(a.attacl) AS x
       WHERE c.relnamespace = 'nexus_parts'::regnamespace$$,
    'no ACL entry on a partition (table or column) names anyone but its owner (PUBLIC included)');
SELECT is_empty(
    $$SELECT x.grantee::regrole, x.privilege_type
        FROM pg_catalog.pg_namespace AS n CROSS JOIN aclexplode(n.nspacl) AS x
       WHERE n.nspname = 'nexus_parts' AND x.grantee <> n.nspowner$$,
    'no ACL entry on schema nexus_parts names anyone but its owner');

-- database -----------------------------------------------------------------------------------
SELECT ok(has_database_privilege(role, current_database(), 'CONNECT'),
          format('%s may connect to the database', role))
  FROM roles ORDER BY role;
-- CREATE DATABASE ... TEMPLATE does not copy the database ACL (the clone gets the default, which
-- lets PUBLIC connect), so PUBLIC's rights are checked on the migrated template this file's
-- database was cloned from.
SELECT ok((SELECT d.datacl IS NOT NULL
                   AND NOT EXISTS (SELECT FROM aclexplode(d.datacl) AS a
                                    WHERE a.grantee = 0 AND a.privilege_type = p.priv)
             FROM pg_catalog.pg_database AS d WHERE d.datname = 'nexus_template'),
          format('PUBLIC has no %s on database nexus_template', p.priv))
  FROM unnest(ARRAY['CONNECT', 'TEMPORARY', 'CREATE']) AS p (priv);
SELECT ok((SELECT EXISTS (SELECT FROM aclexplode(d.datacl) AS a
                           WHERE a.grantee = r.role::regrole AND a.privilege_type = 'CONNECT')
             FROM pg_catalog.pg_database AS d WHERE d.datname = 'nexus_template'),
          format('%s is granted CONNECT on database nexus_template', r.role))
  FROM roles AS r ORDER BY r.role;

-- behaviour, as each role --------------------------------------------------------------------
SELECT is(tests.create_agent('alice'), 'alice', 'alice is registered as an agent');
INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES ('alice', 'alice episode');
INSERT INTO nexus_memory.semantic_memories (agent_id, content) VALUES ('alice', 'alice fact');
INSERT INTO consciousness.consciousness_checkpoints (agent_id, state) VALUES ('alice', '{"s": 1}');

-- analysts read, never write
SET LOCAL ROLE nexus_ro;
SELECT throws_ok(format('SELECT count(*) FROM nexus_parts.%I', 'episode_embeddings_' || left(md5('alice'), 16)),
                 '42501', NULL, 'nexus_ro cannot read a vector partition directly');
SELECT throws_ok($$INSERT INTO nexus_memory.zep_episodic_memory (agent_id, content) VALUES ('alice', 'x')$$,
                 '42501', NULL, 'nexus_ro cannot INSERT an episode');
SELECT throws_ok('UPDATE nexus_memory.zep_episodic_memory SET content = content',
                 '42501', NULL, 'nexus_ro cannot UPDATE an episode');
SELECT is_empty($$SELECT * FROM pg_temp.not_refused(ARRAY(SELECT format('DELETE FROM %s', tbl) FROM data_tables))$$,
                'nexus_ro cannot DELETE from any table');
SELECT is_empty($$SELECT * FROM pg_temp.not_refused(ARRAY(SELECT format('TRUNCATE %s', tbl) FROM data_tables))$$,
                'nexus_ro cannot TRUNCATE any table');
SELECT results_eq('SELECT count(*) FROM nexus_memory.zep_episodic_memory', ARRAY[1::bigint],
                  'nexus_ro reads every agent''s episodes');
SELECT throws_ok('SELECT state FROM consciousness.consciousness_checkpoints',
                 '42501', NULL, 'nexus_ro cannot read checkpoint state');
SELECT results_eq('SELECT agent_id FROM consciousness.consciousness_checkpoints', ARRAY['alice'],
                  'nexus_ro reads the agent_id of checkpoints');
SELECT throws_ok('SELECT nexus.current_agent()', '42501', NULL, 'nexus_ro cannot execute nexus.current_agent()');
RESET ROLE;

-- the orchestrator has nothing of its own: it acts only after SET ROLE to an agent
SET LOCAL ROLE nexus_app;
SELECT is_empty($$SELECT * FROM pg_temp.not_refused(ARRAY(SELECT format('SELECT * FROM %s', tbl) FROM data_tables))$$,
                'nexus_app cannot SELECT from any table');
SELECT throws_ok($$SELECT memory_system.agent_add('mallory')$$, '42501', NULL,
                 'nexus_app cannot register agents');
RESET ROLE;

-- workers: checksums in, embeddings out, never the content
SET LOCAL ROLE nexus_worker;
SELECT throws_ok('SELECT content FROM nexus_memory.zep_episodic_memory', '42501', NULL,
                 'nexus_worker cannot read episode content');
SELECT throws_ok('SELECT content FROM nexus_memory.semantic_memories', '42501', NULL,
                 'nexus_worker cannot read semantic memory content');
SELECT throws_ok($$UPDATE nexus_memory.zep_episodic_memory SET content = 'x'$$, '42501', NULL,
                 'nexus_worker cannot write episode content');
SELECT throws_ok('SELECT agent_id FROM nexus_memory.working_memory_contexts', '42501', NULL,
                 'nexus_worker cannot read working memory');
SELECT throws_ok('SELECT agent_id FROM consciousness.consciousness_checkpoints', '42501', NULL,
                 'nexus_worker cannot read checkpoints');
SELECT throws_ok('SELECT agent_id FROM nexus_memory.zep_episodic_memory', '42501', NULL,
                 'nexus_worker cannot read episodes at all');
SELECT throws_ok($$INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
                   SELECT 'alice', 1, 'm', '\x00', array_fill(0.1::real, ARRAY[384])::public.vector$$,
                 '42501', NULL, 'nexus_worker cannot write vectors directly (only through complete_batch)');
RESET ROLE;

-- agents: their rows, never the embedding columns nor another owner
SET LOCAL ROLE alice;
SELECT throws_ok($$INSERT INTO nexus_memory.episode_embeddings (agent_id, episode_id, model, content_sha256, embedding)
                   SELECT 'alice', id, 'm', content_sha256, array_fill(0.1::real, ARRAY[384])::public.vector
                     FROM nexus_memory.zep_episodic_memory$$,
                 '42501', NULL, 'an agent cannot write its own vectors');
SELECT throws_ok($$DELETE FROM nexus_memory.episode_embeddings$$,
                 '42501', NULL, 'an agent cannot delete vectors');
SELECT throws_ok($$UPDATE nexus_memory.zep_episodic_memory SET agent_id = 'alice'$$,
                 '42501', NULL, 'an agent cannot UPDATE agent_id');
SELECT throws_ok($$UPDATE consciousness.consciousness_checkpoints SET state = '{}'$$,
                 '42501', NULL, 'an agent cannot UPDATE a checkpoint');
SELECT throws_ok($$SELECT memory_system.agent_add('mallory')$$, '42501', NULL,
                 'an agent cannot register agents');
SELECT lives_ok($$INSERT INTO nexus_memory.zep_episodic_memory (content) VALUES ('second')$$,
                'an agent inserts an episode through its column grants');
SELECT throws_ok(format('SELECT count(*) FROM nexus_parts.%I', t), '42501', NULL,
                 format('an agent cannot read partition nexus_parts.%s directly', t))
  FROM unnest(ARRAY['episode_embeddings_' || left(md5(current_user), 16),
                    'semantic_memory_embeddings_' || left(md5(current_user), 16),
                    'store_text_embeddings_' || left(md5(current_user), 16),
                    'episode_embeddings_default']) AS t;
SELECT throws_ok(s, '42501', NULL, format('an agent cannot write the text index: %s', s))
  FROM unnest(ARRAY[
      $$INSERT INTO nexus_memory.text_postings VALUES ('alice', 'forged', 'e', 1, 1, 1)$$,
      $$UPDATE nexus_memory.text_postings SET tf = 99$$,
      $$DELETE FROM nexus_memory.text_postings$$,
      $$INSERT INTO nexus_memory.text_stats VALUES ('alice', 9, 1000, 1000)$$,
      $$UPDATE nexus_memory.text_stats SET docs = 0$$,
      $$DELETE FROM nexus_memory.text_stats$$]) AS s;
SELECT is((SELECT count(*) FROM nexus_memory.text_postings WHERE lexeme = 'second'), 1::bigint,
          'an agent reads its own postings');
SELECT is((SELECT count(*) FROM memory_system.embeddings_queue), 3::bigint,
          'an agent reads the state of its own queue items');
SELECT throws_ok('SELECT content_sha256 FROM memory_system.embeddings_queue', '42501', NULL,
                 'an agent cannot read the queue''s checksums');
SELECT throws_ok($$UPDATE memory_system.embeddings_queue SET state = 'done'$$, '42501', NULL,
                 'an agent cannot change a queue item');
SELECT is((SELECT value FROM memory_system.settings WHERE name = 'embedding_dimensions'), '384',
          'an agent reads the embedding settings');
SELECT throws_ok($$UPDATE memory_system.settings SET value = 'x'$$, '42501', NULL,
                 'an agent cannot change the settings');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
