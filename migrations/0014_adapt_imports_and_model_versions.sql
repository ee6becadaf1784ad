-- Imports that adapt rows instead of rejecting them, and model versions in memory statistics.
--
-- memory_system.imports.adapt: what an import was allowed to adapt (nexus import legacy --adapt):
--   {"metadata": true}          metadata that is not a JSON object is kept as {"legacy_metadata": text}
--   {"max_content_bytes": N}    content over the API's 256 KiB is kept whole, up to N bytes
-- memory_system.import_rows.adapted: what was adapted in that row ('metadata', 'oversize'), so that
-- the validation report counts and lists it and compares it with the source.
ALTER TABLE memory_system.imports ADD COLUMN adapt jsonb;
COMMENT ON COLUMN memory_system.imports.adapt IS
    'What this import may adapt instead of rejecting: {"metadata": true, "max_content_bytes": N}; NULL: nothing.';
ALTER TABLE memory_system.import_rows ADD COLUMN adapted text[];
COMMENT ON COLUMN memory_system.import_rows.adapted IS
    'What the import adapted in this row (metadata, oversize); NULL: written as read.';

-- signatures that change (db/functions/ creates the new ones): memory_stats gains model_versions
-- (the model versions, so precisions, of the current vectors); reembed_all gains a model version
DROP FUNCTION IF EXISTS nexus.memory_stats();
DROP FUNCTION IF EXISTS memory_system.reembed_all(text);
