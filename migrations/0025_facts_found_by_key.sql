-- A keyed fact is found by its key's words too (issue 25; docs/facts.md, "Keys"): the key names what
-- the fact is about ("user.city"), often in words its content does not use ("I moved to Denver").
-- Its text postings now come from the key's words and the content (this file); its vector from
-- "key: content" (memory_system._fact_text, read by memory_system.claim_batch).
--
-- 1. the keyed facts' postings and token counts, as the old content_tsv made them, go
CREATE TEMP TABLE _keyed ON COMMIT DROP AS
SELECT s.agent_id, s.id, l.lexeme, coalesce(array_length(l.positions, 1), 1) AS tf
  FROM nexus_memory.semantic_memories AS s, unnest(s.content_tsv) AS l
 WHERE s.fact_key IS NOT NULL;

DELETE FROM nexus_memory.text_postings AS p USING _keyed AS k
 WHERE p.agent_id = k.agent_id AND p.lexeme = k.lexeme AND p.kind IN ('s', 'h', 'f')
   AND p.doc_id = k.id;

INSERT INTO nexus_memory.text_stats AS t (agent_id, slot, docs, tokens)
SELECT agent_id, 0, 0, -sum(tf) FROM _keyed GROUP BY agent_id
    ON CONFLICT (agent_id, slot) DO UPDATE SET tokens = t.tokens + EXCLUDED.tokens;

-- 2. content_tsv of a fact: its key's words (separators as spaces), then its content
DROP INDEX nexus_memory.semantic_memories_tsv_idx;
ALTER TABLE nexus_memory.semantic_memories DROP COLUMN content_tsv;
ALTER TABLE nexus_memory.semantic_memories ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS
    (to_tsvector('english'::regconfig,
                 coalesce(translate(fact_key, '._-:/', '     ') || ' ', '') || content)) STORED;
CREATE INDEX semantic_memories_tsv_idx
    ON nexus_memory.semantic_memories USING gin (content_tsv);

-- 3. their postings again (the kind of their validity now, as memory_system._fact_kind), counted
CREATE TEMP TABLE _rekeyed ON COMMIT DROP AS
SELECT s.agent_id, s.id, l.lexeme, coalesce(array_length(l.positions, 1), 1) AS tf,
       CASE WHEN s.valid_to <= now() THEN 'h'
            WHEN s.valid_to IS NOT NULL OR s.valid_from > now() THEN 'f' ELSE 's' END::"char" AS kind
  FROM nexus_memory.semantic_memories AS s, unnest(s.content_tsv) AS l
 WHERE s.fact_key IS NOT NULL;

INSERT INTO nexus_memory.text_postings (agent_id, lexeme, kind, doc_id, tf, dl)
SELECT agent_id, lexeme, kind, id, tf, sum(tf) OVER (PARTITION BY agent_id, id)
  FROM _rekeyed;

INSERT INTO nexus_memory.text_stats AS t (agent_id, slot, docs, tokens)
SELECT agent_id, 0, 0, sum(tf) FROM _rekeyed GROUP BY agent_id
    ON CONFLICT (agent_id, slot) DO UPDATE SET tokens = t.tokens + EXCLUDED.tokens;

-- 4. their vectors are made again from "key: content": queued for the model new work targets
INSERT INTO memory_system.embeddings_queue (agent_id, source_table, source_id, content_sha256, model)
SELECT s.agent_id, 'semantic_memories', s.id, s.content_sha256,
       (SELECT value FROM memory_system.settings WHERE name = 'embedding_model')
  FROM nexus_memory.semantic_memories AS s
 WHERE s.fact_key IS NOT NULL
    ON CONFLICT (source_table, source_id) WHERE state = 'pending' DO NOTHING;
