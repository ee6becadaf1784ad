-- Bearer tokens of agents (migration 0012): issued, listed and revoked by the owner (nexus agent
-- token ...); mapped to their agent by the MCP server, logged in as nexus_app.

CREATE OR REPLACE FUNCTION memory_system.token_issue(
    p_agent_id      text,
    p_token_sha256  bytea,
    p_ttl           interval DEFAULT NULL,
    p_label         text DEFAULT ''
)
RETURNS memory_system.agent_tokens
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row memory_system.agent_tokens;
BEGIN
    IF NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent_id), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    IF p_token_sha256 IS NULL OR length(p_token_sha256) <> 32 THEN
        RAISE EXCEPTION 'a token is stored as its SHA-256 (32 bytes)' USING ERRCODE = 'NX006';
    END IF;
    IF p_ttl IS NOT NULL AND p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, got %', p_ttl USING ERRCODE = 'NX006';
    END IF;
    IF length(coalesce(p_label, '')) > 200 THEN
        RAISE EXCEPTION 'label over 200 characters' USING ERRCODE = 'NX006';
    END IF;
    -- the server acts as the agent with SET ROLE: a token it could not use is refused now
    IF NOT pg_catalog.pg_has_role('nexus_app', p_agent_id, 'SET') THEN
        RAISE EXCEPTION 'nexus_app may not act as agent %', p_agent_id USING ERRCODE = 'NX006',
              HINT = format('nexus agent grant %s --to nexus_app', p_agent_id);
    END IF;
    INSERT INTO memory_system.agent_tokens (agent_id, token_sha256, label, expires_at)
    VALUES (p_agent_id, p_token_sha256, coalesce(p_label, ''), now() + p_ttl)
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION memory_system.token_issue(text, bytea, interval, text) IS
'Records a bearer token of an agent by its SHA-256 (the token itself is never stored), valid for
p_ttl (NULL: until revoked). Errors: NX002 unknown agent; NX006 hash not 32 bytes, ttl not
positive, label over 200 characters, or nexus_app may not SET ROLE to the agent.
Callers: the owner (nexus agent token NAME).';


CREATE OR REPLACE FUNCTION memory_system.token_list(p_agent_id text)
RETURNS TABLE (token_id bigint, label text, created_at timestamptz, expires_at timestamptz,
               revoked_at timestamptz, state text)
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent_id), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    RETURN QUERY
    SELECT t.token_id, t.label, t.created_at, t.expires_at, t.revoked_at,
           CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                WHEN t.expires_at <= now() THEN 'expired'
                ELSE 'active' END
      FROM memory_system.agent_tokens AS t
     WHERE t.agent_id = p_agent_id
     ORDER BY t.token_id;
END
$$;
COMMENT ON FUNCTION memory_system.token_list(text) IS
'An agent''s tokens (never their hashes): id, label, times and state active|expired|revoked.
Errors: NX002 unknown agent. Callers: the owner (nexus agent token list NAME).';


CREATE OR REPLACE FUNCTION memory_system.token_revoke(p_token_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_found boolean;
BEGIN
    SELECT true INTO v_found FROM memory_system.agent_tokens WHERE token_id = p_token_id;
    IF v_found IS NULL THEN
        RAISE EXCEPTION 'no token %', coalesce(p_token_id::text, 'NULL') USING ERRCODE = 'NX007';
    END IF;
    UPDATE memory_system.agent_tokens SET revoked_at = now()
     WHERE token_id = p_token_id AND revoked_at IS NULL;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION memory_system.token_revoke(bigint) IS
'Revokes a token: the next request that carries it is refused. True if it was not revoked yet.
Errors: NX007 unknown token id. Callers: the owner (nexus agent token revoke ID).';


CREATE OR REPLACE FUNCTION memory_system.token_agent(p_token_sha256 bytea)
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.agent_id FROM memory_system.agent_tokens AS t
     WHERE t.token_sha256 = p_token_sha256
       AND t.revoked_at IS NULL
       AND (t.expires_at IS NULL OR t.expires_at > pg_catalog.now())
$$;
COMMENT ON FUNCTION memory_system.token_agent(bytea) IS
'The agent a bearer token (given by its SHA-256) acts as, or NULL when the token is unknown,
expired or revoked. SECURITY DEFINER: the table is the owner''s. Callers: nexus_app only (the MCP
server, before it SET ROLEs to that agent).';
