CREATE OR REPLACE FUNCTION memory_system.agent_grant(
    p_agent_id text,
    p_orchestrator text,
    p_check_agent boolean DEFAULT true
)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
BEGIN
    IF p_check_agent AND NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent_id), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_orchestrator) THEN
        RAISE EXCEPTION 'no role %', coalesce(quote_literal(p_orchestrator), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    -- SET only: the orchestrator acts as the agent after SET ROLE, and has none of its rights before.
    EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET TRUE', p_agent_id, p_orchestrator);
END
$$;

COMMENT ON FUNCTION memory_system.agent_grant(text, text, boolean) IS
'Lets an orchestrator login SET ROLE to an agent (and so act as it, under its row-level security).
Errors: NX002 unknown agent or role. Callers: the owner.';

CREATE OR REPLACE FUNCTION memory_system.agent_revoke(p_agent_id text, p_orchestrator text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent_id), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    EXECUTE format('REVOKE %I FROM %I', p_agent_id, p_orchestrator);
END
$$;

COMMENT ON FUNCTION memory_system.agent_revoke(text, text) IS
'Takes back an orchestrator''s right to act as an agent. Errors: NX002 unknown agent. Callers: the owner.';
