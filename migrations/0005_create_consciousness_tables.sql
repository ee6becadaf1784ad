-- An agent's private state snapshots, and the keys agents share and agree on.

CREATE TABLE consciousness.consciousness_checkpoints (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    agent_id         text NOT NULL DEFAULT current_user
                     REFERENCES memory_system.agents (agent_id),
    checkpoint_name  text NOT NULL DEFAULT 'default',
    state            jsonb NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, id)
);
COMMENT ON TABLE consciousness.consciousness_checkpoints IS
    'Private state snapshots of an agent. Analysts see every column but state.';
CREATE INDEX consciousness_checkpoints_agent_created_idx
    ON consciousness.consciousness_checkpoints (agent_id, checkpoint_name, created_at DESC);


-- Shared by all agents of the database (a reference table if ever distributed):
-- versioned compare-and-set, each write records who made it.
CREATE TABLE consciousness.distributed_consensus (
    consensus_key  text PRIMARY KEY,
    value          jsonb NOT NULL,
    version        bigint NOT NULL DEFAULT 1,
    updated_by     text NOT NULL DEFAULT current_user,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE consciousness.distributed_consensus IS
    'Keys several agents agree on, by versioned compare-and-set; shared by all agents.';
