-- Consensus keys are shared by every agent of the database: all agents read them; a write
-- (insert or compare-and-set update) must be signed with the writer's own role.
ALTER TABLE consciousness.distributed_consensus ENABLE ROW LEVEL SECURITY;
ALTER TABLE consciousness.distributed_consensus FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS agent_read ON consciousness.distributed_consensus;
CREATE POLICY agent_read ON consciousness.distributed_consensus
    FOR SELECT TO nexus_agent USING (true);
DROP POLICY IF EXISTS agent_insert ON consciousness.distributed_consensus;
CREATE POLICY agent_insert ON consciousness.distributed_consensus
    FOR INSERT TO nexus_agent WITH CHECK (updated_by = (current_user::text COLLATE "default"));
DROP POLICY IF EXISTS agent_update ON consciousness.distributed_consensus;
CREATE POLICY agent_update ON consciousness.distributed_consensus
    FOR UPDATE TO nexus_agent USING (true) WITH CHECK (updated_by = (current_user::text COLLATE "default"));
DROP POLICY IF EXISTS analyst_read ON consciousness.distributed_consensus;
CREATE POLICY analyst_read ON consciousness.distributed_consensus
    FOR SELECT TO nexus_ro USING (true);
