-- Facts that change (docs/facts.md): a valid time beside the recorded time, an optional key, and
-- what ended a fact. One current fact per (agent, key) at any instant is the database's guarantee:
-- an exclusion constraint over the validity range (btree_gist gives text its gist = operator; it is
-- in every PostgreSQL's contrib, trusted since 13, and keeps nexus migrate working on 16+).
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

-- remember_fact gains key, supersedes and valid_from, get_fact a key, as_of, include_history and
-- the validity columns: their old signatures go (db/functions/api/episodes.sql makes the new ones)
DROP FUNCTION IF EXISTS nexus.remember_fact(text, jsonb, text[], real, bigint);
DROP FUNCTION IF EXISTS nexus.get_fact(bigint);

ALTER TABLE nexus_memory.semantic_memories
    -- the identity a fact keeps through nexus export / nexus import jsonl (chains link by it)
    ADD COLUMN fact_uuid      uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN fact_key       text,
    -- valid time [valid_from, valid_to): valid_to NULL while the fact holds
    ADD COLUMN valid_from     timestamptz,
    ADD COLUMN valid_to       timestamptz,
    -- what ended it: 'superseded' (by superseded_by, NULL once that fact is deleted) or
    -- 'invalidated' (it stopped being true and nothing replaced it); ended_at: when that was recorded
    ADD COLUMN ended_by       text,
    ADD COLUMN ended_at       timestamptz,
    ADD COLUMN superseded_by  bigint,
    -- sha256 of the normalised text (lower case, runs of whitespace as one space, no surrounding
    -- punctuation or whitespace; the text itself if nothing is left): deduplication compares it.
    -- memory_system._fact_text_sha256 (db/functions/memory/facts.sql) computes the same.
    ADD COLUMN content_norm_sha256 bytea GENERATED ALWAYS AS (sha256(decode(replace(coalesce(nullif(
        regexp_replace(regexp_replace(lower(content), '[[:space:]]+', ' ', 'g'),
                       '^[[:space:][:punct:]]+|[[:space:][:punct:]]+$', '', 'g'), ''), content),
        '\', '\\'), 'escape'))) STORED;

-- every fact so far began to hold when it was recorded, and still holds
UPDATE nexus_memory.semantic_memories SET valid_from = created_at;

ALTER TABLE nexus_memory.semantic_memories
    ALTER COLUMN valid_from SET NOT NULL,
    ALTER COLUMN valid_from SET DEFAULT now(),
    -- facts are no longer unique by text: a value can come back ("Austin" again after "Denver");
    -- remember_fact deduplicates against the facts that hold (docs/facts.md)
    DROP CONSTRAINT semantic_memories_agent_id_content_sha256_key,
    ADD CONSTRAINT semantic_memories_agent_id_fact_uuid_key UNIQUE (agent_id, fact_uuid),
    ADD CONSTRAINT semantic_memories_fact_key_check
        CHECK (length(fact_key) BETWEEN 1 AND 256 AND fact_key !~ '^[[:space:]]|[[:space:]]$'),
    -- an empty validity (valid_to = valid_from) is a fact that never held: replaced as it began
    ADD CONSTRAINT semantic_memories_validity_check CHECK (valid_to >= valid_from),
    ADD CONSTRAINT semantic_memories_ended_by_check CHECK (ended_by IN ('superseded', 'invalidated')),
    -- a fact has ended exactly when it has a valid_to, a reason and the time that was recorded
    ADD CONSTRAINT semantic_memories_ended_check
        CHECK ((valid_to IS NULL) = (ended_by IS NULL) AND (ended_by IS NULL) = (ended_at IS NULL)),
    ADD CONSTRAINT semantic_memories_superseded_by_check
        CHECK (superseded_by IS NULL OR (ended_by = 'superseded' AND superseded_by <> id)),
    ADD CONSTRAINT semantic_memories_superseded_by_fkey FOREIGN KEY (agent_id, superseded_by)
        REFERENCES nexus_memory.semantic_memories (agent_id, id) ON DELETE SET NULL (superseded_by),
    ADD CONSTRAINT semantic_memories_one_fact_per_key EXCLUDE USING gist
        (agent_id WITH =, fact_key WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)
        WHERE (fact_key IS NOT NULL);

COMMENT ON COLUMN nexus_memory.semantic_memories.valid_from IS
    'Valid time: when the fact began to hold (the caller''s valid_from, or when it was recorded).';
COMMENT ON COLUMN nexus_memory.semantic_memories.valid_to IS
    'Valid time: when it stopped holding (exclusive); NULL while it holds.';
COMMENT ON COLUMN nexus_memory.semantic_memories.ended_by IS
    'What ended it: superseded (by superseded_by) or invalidated; NULL while it holds.';

-- the facts deduplication compares a new unkeyed fact with: unkeyed ones that have not ended
CREATE INDEX semantic_memories_open_text_idx
    ON nexus_memory.semantic_memories (agent_id, content_norm_sha256)
    WHERE fact_key IS NULL AND valid_to IS NULL;
-- a chain read backwards (fact_history), and deletes of the fact that replaced another
CREATE INDEX semantic_memories_superseded_by_idx
    ON nexus_memory.semantic_memories (agent_id, superseded_by) WHERE superseded_by IS NOT NULL;
