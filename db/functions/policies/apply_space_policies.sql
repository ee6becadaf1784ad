CREATE OR REPLACE FUNCTION memory_system._apply_space_policies(p_table regclass, p_write boolean)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    -- replaces agent_own (memory_system._apply_agent_policies): an agent reads its own rows and
    -- those of the spaces it is in, in one condition (an OR of two policies would keep the agent's
    -- own id out of index conditions). The ids are computed once per statement (an InitPlan: the
    -- scalar subquery), not once per row.
    EXECUTE format('DROP POLICY IF EXISTS agent_own ON %s', p_table);
    EXECUTE format('DROP POLICY IF EXISTS agent_read ON %s', p_table);
    EXECUTE format('CREATE POLICY agent_read ON %s FOR SELECT TO nexus_agent '
                   'USING (agent_id = ANY ((SELECT memory_system._readable_ids())::text[]))', p_table);
    EXECUTE format('DROP POLICY IF EXISTS agent_insert ON %s', p_table);
    EXECUTE format('DROP POLICY IF EXISTS agent_update ON %s', p_table);
    EXECUTE format('DROP POLICY IF EXISTS agent_delete ON %s', p_table);
    -- its own rows, and with p_write those of the spaces it may write, it inserts, updates and
    -- deletes (a row stays where it is); vectors and the text index are written by the owner only
    EXECUTE format('CREATE POLICY agent_insert ON %s FOR INSERT TO nexus_agent '
                   'WITH CHECK (agent_id = ANY ((SELECT memory_system.%s())::text[]))', p_table,
                   CASE WHEN p_write THEN '_writable_ids' ELSE '_own_id' END);
    EXECUTE format('CREATE POLICY agent_update ON %1$s FOR UPDATE TO nexus_agent '
                   'USING (agent_id = ANY ((SELECT memory_system.%2$s())::text[])) '
                   'WITH CHECK (agent_id = ANY ((SELECT memory_system.%2$s())::text[]))', p_table,
                   CASE WHEN p_write THEN '_writable_ids' ELSE '_own_id' END);
    EXECUTE format('CREATE POLICY agent_delete ON %s FOR DELETE TO nexus_agent '
                   'USING (agent_id = ANY ((SELECT memory_system.%s())::text[]))', p_table,
                   CASE WHEN p_write THEN '_writable_ids' ELSE '_own_id' END);
END
$$;

COMMENT ON FUNCTION memory_system._apply_space_policies(regclass, boolean) IS
'Replaces the agent_own policy of a memory table (after memory_system._apply_agent_policies) by
policies that add spaces (docs/spaces.md): an agent reads its own rows and those of the spaces it is
in; it writes its own, and with p_write those of the spaces it may write. Working memory,
checkpoints and tokens get none: they stay private. Internal: called by db/policies/*.sql.';
