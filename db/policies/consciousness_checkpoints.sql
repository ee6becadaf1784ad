-- Checkpoints are private: analysts see that they exist (agent, name, metadata, time) but never
-- their state; that is decided by column grants in db/grants.sql.
SELECT memory_system._apply_agent_policies('consciousness.consciousness_checkpoints');
