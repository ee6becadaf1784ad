-- Extensions and the four schemas. `nexus` is the agents' API (functions only);
-- the other three hold the data.
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

CREATE SCHEMA nexus;
COMMENT ON SCHEMA nexus IS 'The API agents call: functions only.';
CREATE SCHEMA nexus_memory;
COMMENT ON SCHEMA nexus_memory IS 'Agent memories: episodes, working memory, semantic facts.';
CREATE SCHEMA memory_system;
COMMENT ON SCHEMA memory_system IS 'Machinery: agents registry, embedding queue, reconciliation, heartbeats.';
CREATE SCHEMA consciousness;
COMMENT ON SCHEMA consciousness IS 'Agent checkpoints and distributed consensus keys.';

REVOKE ALL ON SCHEMA nexus, nexus_memory, memory_system, consciousness FROM PUBLIC;
