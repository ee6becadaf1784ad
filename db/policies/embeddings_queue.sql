-- The queue is a system table: its owner's SECURITY DEFINER functions do the work (and bypass these
-- policies, which are not forced). Workers and analysts read every item; an agent reads the state of
-- its own items and its spaces' only (nexus.memory_stats, docs/spaces.md), through a few granted columns.
ALTER TABLE memory_system.embeddings_queue ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS worker_read ON memory_system.embeddings_queue;
CREATE POLICY worker_read ON memory_system.embeddings_queue FOR SELECT TO nexus_worker USING (true);
DROP POLICY IF EXISTS analyst_read ON memory_system.embeddings_queue;
CREATE POLICY analyst_read ON memory_system.embeddings_queue FOR SELECT TO nexus_ro USING (true);
DROP POLICY IF EXISTS agent_own ON memory_system.embeddings_queue;
CREATE POLICY agent_own ON memory_system.embeddings_queue FOR SELECT TO nexus_agent
    USING (agent_id = ANY ((SELECT memory_system._readable_ids())::text[]));
