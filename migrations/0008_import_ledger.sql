-- Imports from another memory store, and the ledger that makes them repeatable and reversible.
-- Every row an import writes is recorded with the identity it had in the source: a second run
-- skips what is recorded, validation compares source, ledger and target checksums, and rollback
-- deletes what the import added and puts back what it replaced.

CREATE TABLE memory_system.imports (
    import_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    format       text NOT NULL CHECK (format IN ('legacy', 'jsonl')),
    -- where the rows came from, with no secret: host, port and database, or a file name
    source       text NOT NULL,
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'done', 'failed', 'rolled_back')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- the last validation report (counts, mismatches), as the command printed it
    report       jsonb
);
COMMENT ON TABLE memory_system.imports IS
    'One row per run of nexus import: its source, state and last validation report.';

CREATE TABLE memory_system.import_rows (
    import_id       bigint NOT NULL REFERENCES memory_system.imports (import_id),
    -- episode | semantic | working_memory | checkpoint
    kind            text NOT NULL CHECK (kind IN ('episode', 'semantic', 'working_memory', 'checkpoint')),
    agent_id        text NOT NULL,
    -- the row's identity in its source, e.g. 'legacy/episodic_memory/42' or 'redis/wm:aria:goal'
    source_ref      text NOT NULL,
    target_id       bigint NOT NULL,
    -- sha256 of the content (episodes, facts) or of the JSON value (working memory, checkpoints)
    -- as read from the source
    source_sha256   bytea NOT NULL,
    -- the target row this import replaced (working memory keys that already existed), to put back
    prior           jsonb,
    -- the row was already there (same episode uuid, same fact, same checkpoint): validated with the
    -- import, never deleted by its rollback
    adopted         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (import_id, kind, agent_id, source_ref),
    -- a source row is imported once, whichever run reads it again
    UNIQUE (kind, agent_id, source_ref)
);
COMMENT ON TABLE memory_system.import_rows IS
    'Ledger of imported rows: source identity, target id, source checksum and any replaced row.';
CREATE INDEX import_rows_target_idx ON memory_system.import_rows (kind, agent_id, target_id);

-- Source rows an import could not write (bad JSON, content too large, ...): named, never lost.
CREATE TABLE memory_system.import_rejects (
    import_id   bigint NOT NULL REFERENCES memory_system.imports (import_id),
    kind        text NOT NULL,
    agent_id    text,
    source_ref  text NOT NULL,
    sqlstate    text NOT NULL,
    reason      text NOT NULL,
    PRIMARY KEY (import_id, kind, source_ref)
);
COMMENT ON TABLE memory_system.import_rejects IS
    'Source rows an import refused, with the error each raised.';
