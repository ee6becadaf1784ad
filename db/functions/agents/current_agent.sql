CREATE OR REPLACE FUNCTION nexus.current_agent()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
AS $$
DECLARE
    v_agent text;
BEGIN
    -- invoker rights: current_user is the caller, and row-level security shows it its own row
    SELECT a.agent_id INTO v_agent
      FROM memory_system.agents AS a
     WHERE a.agent_id = (current_user::text COLLATE "default");
    IF v_agent IS NULL THEN
        RAISE EXCEPTION 'role % is not a registered agent', current_user
            USING ERRCODE = 'NX001',
                  HINT = 'Connect with an agent''s own role (nexus agent dsn NAME) or SET ROLE to one.';
    END IF;
    RETURN v_agent;
END
$$;

COMMENT ON FUNCTION nexus.current_agent() IS
'The agent id of the calling role (its login role name, or the role an orchestrator SET ROLE to).
Errors: NX001 when the role is not a registered agent. Callers: agents.';
