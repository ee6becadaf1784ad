-- Bearer tokens for remote agents (the MCP server over HTTP). A token is 32 random bytes shown
-- once to the operator; only its SHA-256 is stored, so a copy of the database gives no token.
CREATE TABLE memory_system.agent_tokens (
    token_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id      text NOT NULL REFERENCES memory_system.agents (agent_id) ON DELETE CASCADE,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- NULL: never expires
    expires_at    timestamptz,
    revoked_at    timestamptz
);
COMMENT ON TABLE memory_system.agent_tokens IS
    'Bearer tokens of agents (SHA-256 only): which agent a token acts as, until when, revoked or not.';
CREATE INDEX agent_tokens_agent_idx ON memory_system.agent_tokens (agent_id);
-- nobody but the owner reads or writes it directly (grants.sql gives analysts all but the hash)
ALTER TABLE memory_system.agent_tokens ENABLE ROW LEVEL SECURITY;
