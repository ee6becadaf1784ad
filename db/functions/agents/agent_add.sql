CREATE OR REPLACE FUNCTION memory_system.agent_add(
    p_agent_id text,
    p_password_verifier text DEFAULT NULL,
    p_description text DEFAULT '',
    p_orchestrator text DEFAULT 'nexus_app'
)
RETURNS memory_system.agents
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
DECLARE
    v_row memory_system.agents;
BEGIN
    IF p_agent_id IS NULL OR p_agent_id !~ '^[a-z][a-z0-9_]{0,62}$' OR p_agent_id ~ '^(pg_|nexus_)' THEN
        RAISE EXCEPTION 'invalid agent name: %', coalesce(quote_literal(p_agent_id), 'NULL')
            USING ERRCODE = 'NX003',
                  HINT = 'Lower-case letters, digits and _, starting with a letter, at most 63 characters; not starting with pg_ or nexus_.';
    END IF;
    IF EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'agent % already exists', p_agent_id USING ERRCODE = 'NX004';
    END IF;
    -- agents and spaces share one namespace (docs/spaces.md; space_create takes the same lock)
    PERFORM pg_advisory_xact_lock(hashtext('nexus_agent_and_space_names'));
    IF EXISTS (SELECT FROM memory_system.spaces WHERE name = p_agent_id) THEN
        RAISE EXCEPTION 'the name % is taken by a space', p_agent_id USING ERRCODE = 'NX082';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = p_agent_id) THEN
        -- Roles are cluster-wide: reuse a role only if it is an agent role (of another database).
        IF NOT pg_catalog.pg_has_role(p_agent_id, 'nexus_agent', 'MEMBER') THEN
            RAISE EXCEPTION 'role % already exists and is not an agent role', p_agent_id
                USING ERRCODE = 'NX004', HINT = 'Choose another agent name.';
        END IF;
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN', p_agent_id);
    END IF;
    EXECUTE format('GRANT nexus_agent TO %I WITH INHERIT TRUE, SET FALSE', p_agent_id);
    IF p_password_verifier IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', p_agent_id, p_password_verifier);
    END IF;
    IF p_orchestrator IS NOT NULL THEN
        PERFORM memory_system.agent_grant(p_agent_id, p_orchestrator, false);
    END IF;
    INSERT INTO memory_system.agents (agent_id, description)
    VALUES (p_agent_id, coalesce(p_description, ''))
    RETURNING * INTO v_row;
    RETURN v_row;
END
$$;

COMMENT ON FUNCTION memory_system.agent_add(text, text, text, text) IS
'Registers an agent: creates its login role (member of nexus_agent, inheriting its privileges, never
able to SET ROLE to it), sets its password from a SCRAM verifier if given, and lets the orchestrator
role (nexus_app by default; NULL for none) SET ROLE to it.
Errors: NX003 invalid name; NX004 agent exists or the role name is taken; NX082 a space has the name. Callers: the owner (nexus agent add).';
