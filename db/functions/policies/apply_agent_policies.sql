CREATE OR REPLACE FUNCTION memory_system._apply_agent_policies(p_table regclass)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    -- an agent sees and writes only rows whose agent_id is the role it authenticated as
    EXECUTE format('DROP POLICY IF EXISTS agent_own ON %s', p_table);
    EXECUTE format('CREATE POLICY agent_own ON %s TO nexus_agent '
                   'USING (agent_id = (current_user::text COLLATE "default")) WITH CHECK (agent_id = (current_user::text COLLATE "default"))',
                   p_table);
    -- analysts read every agent's rows (their grants decide which columns)
    EXECUTE format('DROP POLICY IF EXISTS analyst_read ON %s', p_table);
    EXECUTE format('CREATE POLICY analyst_read ON %s FOR SELECT TO nexus_ro USING (true)', p_table);
END
$$;

COMMENT ON FUNCTION memory_system._apply_agent_policies(regclass) IS
'Enables and forces row-level security on an agent-owned table and (re)creates its policies:
agents own rows where agent_id = current_user; analysts read all. Workers get no policy: they
reach memories only through the queue functions. Internal: called by db/policies/*.sql.';
