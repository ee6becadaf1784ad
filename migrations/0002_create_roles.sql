-- Group roles. Roles are cluster-wide, so each is created only if missing.
-- Login (and its password) is enabled by `nexus` from secret files, never here.
--   nexus_agent  : every agent's login role is a member (INHERIT, no SET); RLS scopes it.
--   nexus_app    : the orchestrator login; may SET ROLE to the agents granted to it.
--   nexus_worker : embedding workers; queue functions and embedding columns only.
--   nexus_ro     : analysts; read only.
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['nexus_agent', 'nexus_app', 'nexus_worker', 'nexus_ro'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', v_role);
        END IF;
    END LOOP;
END
$$;

ALTER ROLE nexus_agent INHERIT;
ALTER ROLE nexus_worker INHERIT;
ALTER ROLE nexus_ro INHERIT;
-- analysts never write, even by mistake
ALTER ROLE nexus_ro SET default_transaction_read_only = on;
