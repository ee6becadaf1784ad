-- A space is visible to its members only (an agent never learns the name of a space it is not in);
-- analysts see them all. Forced: the operator's functions run as the owner, who bypasses it.
ALTER TABLE memory_system.spaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_system.spaces FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS space_member ON memory_system.spaces;
CREATE POLICY space_member ON memory_system.spaces
    FOR SELECT TO nexus_agent USING (memory_system._is_member(reader_role));
DROP POLICY IF EXISTS analyst_read ON memory_system.spaces;
CREATE POLICY analyst_read ON memory_system.spaces FOR SELECT TO nexus_ro USING (true);
