-- An agent sees its own registry row only (nexus.current_agent relies on it); analysts see them
-- all. Not forced: the owner's SECURITY DEFINER check memory_system._check_agent reads every row.
ALTER TABLE memory_system.agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_system.agents NO FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS agent_self ON memory_system.agents;
CREATE POLICY agent_self ON memory_system.agents
    FOR SELECT TO nexus_agent USING (agent_id = (current_user::text COLLATE "default"));
DROP POLICY IF EXISTS analyst_read ON memory_system.agents;
CREATE POLICY analyst_read ON memory_system.agents FOR SELECT TO nexus_ro USING (true);
