-- Every privilege of the database, in one place, applied last by the loader on every run.
-- It first takes everything away, then grants what each role needs, so this file is the
-- whole truth. PUBLIC gets nothing.

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO nexus_agent, nexus_app, nexus_worker, nexus_ro',
                   current_database());
END
$$;

-- schemas ------------------------------------------------------------------------------------
REVOKE ALL ON SCHEMA public, nexus, nexus_memory, memory_system, consciousness
    FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;
-- public holds the pgvector type and operators
GRANT USAGE ON SCHEMA public TO nexus_agent, nexus_app, nexus_worker, nexus_ro;
GRANT USAGE ON SCHEMA nexus TO nexus_agent, nexus_ro;
GRANT USAGE ON SCHEMA nexus_memory, consciousness TO nexus_agent, nexus_ro;
GRANT USAGE ON SCHEMA memory_system TO nexus_agent, nexus_worker, nexus_ro;
-- the orchestrator: only to map a bearer token to its agent (memory_system.token_agent, below)
GRANT USAGE ON SCHEMA memory_system TO nexus_app;

-- tables -------------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA nexus, nexus_memory, memory_system, consciousness
    FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA nexus, nexus_memory, memory_system, consciousness
    FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;

-- agents: their own rows (row-level security)
GRANT SELECT, DELETE ON nexus_memory.zep_episodic_memory TO nexus_agent;
GRANT INSERT (agent_id, episode_uuid, session_id, action_type, source, content, metadata, tags,
              importance, valid_at, created_at),
      UPDATE (session_id, action_type, source, content, metadata, tags, importance, valid_at)
    ON nexus_memory.zep_episodic_memory TO nexus_agent;
GRANT SELECT, DELETE ON nexus_memory.semantic_memories TO nexus_agent;
-- a fact's key and valid time are written with it; what ends it, later (docs/facts.md). Its
-- fact_uuid (an export's identity) is never an agent's to choose, nor a key to change.
GRANT INSERT (agent_id, content, metadata, tags, importance, source_episode_id, created_at, fact_key,
              valid_from, valid_to, ended_by, ended_at, superseded_by),
      UPDATE (content, metadata, tags, importance, source_episode_id, valid_from, valid_to, ended_by,
              ended_at, superseded_by)
    ON nexus_memory.semantic_memories TO nexus_agent;
GRANT SELECT, DELETE ON nexus_memory.working_memory_contexts TO nexus_agent;
GRANT INSERT (agent_id, context_key, value, expires_at),
      UPDATE (value, expires_at)
    ON nexus_memory.working_memory_contexts TO nexus_agent;
GRANT SELECT, DELETE ON nexus_memory.store_items TO nexus_agent;
GRANT INSERT (agent_id, namespace, key, value, created_at, updated_at, ttl, expires_at),
      UPDATE (value, ttl, expires_at)
    ON nexus_memory.store_items TO nexus_agent;
GRANT SELECT, DELETE ON nexus_memory.store_texts TO nexus_agent;
GRANT INSERT (agent_id, item_id, path, content), UPDATE (content)
    ON nexus_memory.store_texts TO nexus_agent;
GRANT SELECT, DELETE ON consciousness.consciousness_checkpoints TO nexus_agent;
GRANT INSERT (agent_id, checkpoint_name, state, metadata)
    ON consciousness.consciousness_checkpoints TO nexus_agent;
GRANT SELECT ON consciousness.distributed_consensus TO nexus_agent;
GRANT INSERT (consensus_key, value, updated_by),
      UPDATE (value, version, updated_by)
    ON consciousness.distributed_consensus TO nexus_agent;
GRANT SELECT ON memory_system.agents TO nexus_agent;
-- spaces (docs/spaces.md): the ones an agent is in (row-level security), roles and all
GRANT SELECT ON memory_system.spaces TO nexus_agent;
-- retention rules (docs/privacy.md): an agent sets its own (row-level security); what the sweep
-- removed (removed, last_swept_at) only the sweep writes
GRANT SELECT, DELETE ON memory_system.retention_rules TO nexus_agent;
GRANT INSERT (agent_id, kind, older_than, importance_below),
      UPDATE (older_than, importance_below, set_by, updated_at)
    ON memory_system.retention_rules TO nexus_agent;
-- the read record: an agent reads its own (row-level security); only _record_read writes it
GRANT SELECT ON memory_system.reads TO nexus_agent;

-- agents read their own vectors and text postings (search); complete_batch and triggers write them
GRANT SELECT ON nexus_memory.episode_embeddings, nexus_memory.semantic_memory_embeddings,
                nexus_memory.store_text_embeddings,
                nexus_memory.text_postings, nexus_memory.text_stats TO nexus_agent;
-- the embedding model and dimension, checked by search
GRANT SELECT ON memory_system.settings TO nexus_agent;
-- the state of their own queue items (row-level security), for nexus.memory_stats
GRANT SELECT (id, agent_id, source_table, source_id, state, retry_count, last_error, enqueued_at, processed_at)
    ON memory_system.embeddings_queue TO nexus_agent;
-- partitions: nobody but the owner; everyone goes through the parent tables and their policies
REVOKE ALL ON SCHEMA nexus_parts FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;
REVOKE ALL ON ALL TABLES IN SCHEMA nexus_parts FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;

-- workers: nothing on memory tables. They read content and write vectors only through the queue
-- functions (below), which check every vector against the checksum of the content it came from.

-- analysts: read everything but the private state of checkpoints
GRANT SELECT ON ALL TABLES IN SCHEMA nexus_memory, memory_system TO nexus_ro;
GRANT SELECT ON consciousness.distributed_consensus TO nexus_ro;
GRANT SELECT (id, agent_id, checkpoint_name, metadata, created_at)
    ON consciousness.consciousness_checkpoints TO nexus_ro;
-- agents' bearer tokens: everything but their hashes
REVOKE ALL ON memory_system.agent_tokens FROM nexus_ro;
GRANT SELECT (token_id, agent_id, label, created_at, expires_at, revoked_at)
    ON memory_system.agent_tokens TO nexus_ro;

-- functions ----------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA nexus, nexus_memory, memory_system, consciousness
    FROM PUBLIC, nexus_agent, nexus_app, nexus_worker, nexus_ro;

-- the agent API: every function of schema nexus (each scoped to its caller by row-level security)
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA nexus TO nexus_agent;
-- read by the API as the agent: the configured model, whether a memory has a current vector
-- (and of which version),
-- and the name of the agent's vector partition (search)
GRANT EXECUTE ON FUNCTION memory_system._embedding_model(),
                          memory_system._embedded(text, text, bigint, bytea, text),
                          memory_system._embedded_version(text, text, bigint, bytea, text),
                          memory_system._vector_partition(text, text) TO nexus_agent;
-- whether the Redis mirror leads (nexus.forget's receipt says whether its outbox was filled)
GRANT EXECUTE ON FUNCTION memory_system._cache_mirror_leading() TO nexus_agent;
-- used by the validation triggers, which run as the writing agent
GRANT EXECUTE ON FUNCTION memory_system._check_agent(text),
                          memory_system._check_size(text, bigint, bigint),
                          memory_system._check_json_object(text, jsonb, bigint),
                          memory_system._check_tags(text[]),
                          memory_system._store_check_namespace(text[], text, boolean),
                          memory_system._check_fact_key(text)
    TO nexus_agent;
-- the fact functions' helpers (db/functions/memory/facts.sql), and as_of given as text
GRANT EXECUTE ON FUNCTION memory_system._fact_text_sha256(text),
                          memory_system._fact_lock(text, text),
                          memory_system._fact_rows(text, bigint[], timestamptz, text),
                          memory_system._fact_to_end(bigint, timestamptz),
                          memory_system._fact_check_input(text, jsonb, text[], real, text, bigint),
                          memory_system._fact_merge(bigint, jsonb, text[], real, bigint),
                          memory_system._as_of(text)
    TO nexus_agent;

-- spaces (docs/spaces.md): who may read and write which, as the agent (the policies call the first two)
GRANT EXECUTE ON FUNCTION memory_system._is_member(text),
                          memory_system._member_spaces(boolean),
                          memory_system._readable_ids(),
                          memory_system._writable_ids(),
                          memory_system._own_id(),
                          memory_system._space_id(text, boolean),
                          memory_system._write_target(text),
                          memory_system._read_target(text),
                          memory_system._space_row(text),
                          memory_system._space_owned(text, text),
                          memory_system._space_rights(text),
                          memory_system._space_grant_roles(memory_system.spaces, text, text, boolean),
                          memory_system._space_revoke_role(text, text)
    TO nexus_agent;
-- retention rules, for the agent's own (nexus.retention_*), and the read record's one call at the
-- end of each read function
GRANT EXECUTE ON FUNCTION memory_system.retention_set(text, text, interval, real, boolean),
                          memory_system.retention_remove(text, text),
                          memory_system.retention_list(text),
                          memory_system._retention_check(text, interval, real),
                          memory_system._retention_matching(text, text, interval, real),
                          memory_system._record_read(text, text, text[], bigint[], text)
    TO nexus_agent;

-- workers: the queue functions, nothing else
GRANT EXECUTE ON FUNCTION memory_system.claim_batch(text, integer, interval, text),
                          memory_system.complete_batch(text, bigint[], public.vector[], bytea[], text, text),
                          memory_system.skip_batch(text, bigint[], text),
                          memory_system.fail_item(text, bigint, text),
                          memory_system.heartbeat(text, interval, jsonb),
                          memory_system.release(text),
                          memory_system.expire_leases(text[]),
                          memory_system.reap_expired_leases(),
                          memory_system.prune_done(interval),
                          memory_system.queue_stats(),
                          memory_system.purge_expired_working_memory(integer),
                          memory_system.purge_expired_store_items(integer),
                          memory_system.retention_sweep(integer),
                          -- the Redis mirror (sidecar/cache.py): what the cache holds, and checksums
                          memory_system.cache_working_memory(bigint[]),
                          memory_system.cache_working_memory_range(bigint, bigint),
                          memory_system.cache_range_checksums(integer),
                          memory_system.cache_recent_episodes(text[], integer),
                          memory_system.cache_agents(),
                          memory_system.cache_outbox_drain(integer),
                          memory_system.cache_outbox_clear(),
                          -- the schema's version, checked at start (sidecar/__main__.py)
                          memory_system.schema_migration()
    TO nexus_worker;
-- the queue's own bookkeeping, read by workers for stats; analysts read everything anyway
GRANT SELECT ON memory_system.embeddings_queue, memory_system.worker_heartbeats, memory_system.settings
    TO nexus_worker;
GRANT EXECUTE ON FUNCTION memory_system.queue_stats() TO nexus_ro;
GRANT EXECUTE ON FUNCTION memory_system.reads_status(),
                          memory_system.reads_of(text, timestamptz, timestamptz, integer) TO nexus_ro;
-- the MCP server (logged in as nexus_app): which agent a bearer token acts as, nothing else
GRANT EXECUTE ON FUNCTION memory_system.token_agent(bytea) TO nexus_app;
