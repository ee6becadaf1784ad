-- The embedding queue, worker heartbeats and queue settings.
-- A system table (not agent-owned): agents never touch it; agent_id is kept for per-agent stats
-- and so that work can be routed by agent if the tables are ever distributed.

CREATE TABLE memory_system.settings (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memory_system.settings IS 'System settings (the current embedding model, ...).';
INSERT INTO memory_system.settings (name, value) VALUES
    ('embedding_model', 'sentence-transformers/all-MiniLM-L6-v2'),
    ('embedding_dimensions', '384');

CREATE TABLE memory_system.embeddings_queue (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id          text NOT NULL,
    source_table      text NOT NULL
                      CHECK (source_table IN ('zep_episodic_memory', 'semantic_memories')),
    source_id         bigint NOT NULL,
    content_sha256    bytea NOT NULL,
    model             text NOT NULL,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'processing', 'done', 'dead')),
    retry_count       integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    last_error        text,
    enqueued_at       timestamptz NOT NULL DEFAULT now(),
    available_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at        timestamptz,
    processed_at      timestamptz,
    processed_by      text,
    lease_owner       text,
    lease_expires_at  timestamptz,
    CHECK ((state = 'processing') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (fillfactor = 70,
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_insert_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.02);
COMMENT ON TABLE memory_system.embeddings_queue IS
    'Embedding work: one item per (source row, content checksum); pending -> processing -> done, or dead after 5 failures.';

-- the claim path: oldest available pending work first
CREATE INDEX embeddings_queue_claim_idx
    ON memory_system.embeddings_queue (available_at, id) WHERE state = 'pending';
-- at most one pending item per source row: newer content supersedes it in place
CREATE UNIQUE INDEX embeddings_queue_pending_source_idx
    ON memory_system.embeddings_queue (source_table, source_id) WHERE state = 'pending';
-- every item of a source row (deletes, re-embedding)
CREATE INDEX embeddings_queue_source_idx
    ON memory_system.embeddings_queue (source_table, source_id);
-- expired leases
CREATE INDEX embeddings_queue_lease_idx
    ON memory_system.embeddings_queue (lease_expires_at) WHERE state = 'processing';
-- pruning and throughput of finished work
CREATE INDEX embeddings_queue_processed_idx
    ON memory_system.embeddings_queue (processed_at) WHERE state = 'done';
CREATE INDEX embeddings_queue_dead_idx
    ON memory_system.embeddings_queue (id) WHERE state = 'dead';
CREATE INDEX embeddings_queue_agent_state_idx
    ON memory_system.embeddings_queue (agent_id, state);

CREATE TABLE memory_system.worker_heartbeats (
    worker_id     text PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    info          jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE memory_system.worker_heartbeats IS
    'One row per embedding worker process: last heartbeat, and when it stopped cleanly.';
