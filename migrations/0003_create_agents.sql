-- The registry of agents. An agent's id IS the name of the login role it authenticates as,
-- so row-level security compares agent_id with current_user and nothing a caller can set.
CREATE TABLE memory_system.agents (
    agent_id    text PRIMARY KEY
                CHECK (agent_id ~ '^[a-z][a-z0-9_]{0,62}$'
                       AND agent_id !~ '^(pg_|nexus_)'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memory_system.agents IS
    'Registered agents; agent_id is the login role name of the agent.';
