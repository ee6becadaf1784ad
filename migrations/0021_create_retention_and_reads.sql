-- Retention by rule and the record of reads (docs/privacy.md, "Retention" and "Reads").
--
-- retention_rules: per agent (or space: any row of the agents registry) and kind, the memories
--   older than older_than (and, with importance_below, less important than it) that the workers'
--   heartbeat sweep removes, in bounded batches (memory_system.retention_sweep). Set by the
--   operator or by the agent itself (row-level security: its own rules only).
-- reads: the read record, off by default. When on (read_settings per agent, or the setting
--   'reads' for all), each read function of the API appends who read, when, the function, the
--   SHA-256 of the query (the text only if configured) and the ids it returned, in rank order.
--   Append-only (a trigger refuses changes, nobody is granted them), partitioned by day (UTC) in
--   nexus_parts, with a DEFAULT partition so that no read is lost when a day's partition is
--   missing; days older than the setting 'reads_keep_days' are dropped by the sweep.

CREATE TABLE memory_system.retention_rules (
    agent_id          text NOT NULL DEFAULT current_user
                      REFERENCES memory_system.agents (agent_id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('episode', 'semantic')),
    older_than        interval NOT NULL CHECK (older_than > interval '0'),
    -- NULL: whatever the importance
    importance_below  real CHECK (importance_below BETWEEN 0 AND 1),
    -- who set it: the role that logged in (an operator, an orchestrator or the agent)
    set_by            text NOT NULL DEFAULT session_user,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- what the sweep did under this rule
    removed           bigint NOT NULL DEFAULT 0,
    last_swept_at     timestamptz,
    PRIMARY KEY (agent_id, kind)
);
COMMENT ON TABLE memory_system.retention_rules IS
    'Retention rules: per agent and kind, memories older than older_than (and less important than importance_below) go.';


CREATE TABLE memory_system.read_settings (
    agent_id    text PRIMARY KEY REFERENCES memory_system.agents (agent_id) ON DELETE CASCADE,
    -- overrides the setting 'reads' (for all agents) either way
    record      boolean NOT NULL,
    -- NULL: the setting 'reads_query_text'
    query_text  boolean,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memory_system.read_settings IS
    'Per agent: whether its reads are recorded (overrides the setting reads) and with the query text.';
-- for all agents, rows of memory_system.settings made by memory_system.reads_set when first set:
-- 'reads' (on|off, default off), 'reads_query_text' (on|off, default off), 'reads_keep_days' (90)


CREATE TABLE memory_system.reads (
    id            bigserial,
    agent_id      text NOT NULL,
    read_at       timestamptz NOT NULL DEFAULT now(),
    function      text NOT NULL,
    -- the role that logged in (the agent, or the orchestrator acting as it)
    login         text NOT NULL DEFAULT session_user,
    query_sha256  bytea,
    query         text,
    -- the memories returned, in the order returned: kinds[i] is the kind of ids[i]
    kinds         text[] NOT NULL,
    ids           bigint[] NOT NULL,
    CHECK (cardinality(kinds) = cardinality(ids))
) PARTITION BY RANGE (read_at);
COMMENT ON TABLE memory_system.reads IS
    'The read record: who read which memories, when, by which function and query (append-only, a partition per day).';
CREATE INDEX reads_agent_read_at_idx ON memory_system.reads (agent_id, read_at);
CREATE TABLE nexus_parts.reads_default PARTITION OF memory_system.reads DEFAULT;
COMMENT ON TABLE nexus_parts.reads_default IS 'Reads of days that have no partition of their own';


-- memory_stats shows what retention removed: a new column
DROP FUNCTION IF EXISTS nexus.memory_stats();
