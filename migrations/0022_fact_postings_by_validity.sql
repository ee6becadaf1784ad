-- "True now" text search without a check per fact (issue 25; bench/README.md,
-- quality.knowledge_update.validity_cost_ratio): a fact's postings carry in their kind what its
-- validity is as of when it was last written (memory_system._fact_kind, kept by the text-index
-- triggers in db/functions/search/text_index.sql):
--   s  it holds and has no end: it holds from then on, until it ends (and is moved);
--   h  it has ended: it never holds again;
--   f  a bound in the future (it begins or ends later): checked at each search, as before.
-- nexus.text_candidates reads s without a check and, for "now", never h.
ALTER TABLE nexus_memory.text_postings DROP CONSTRAINT text_postings_kind_check;
ALTER TABLE nexus_memory.text_postings ADD CONSTRAINT text_postings_kind_check
    CHECK (kind IN ('e', 's', 't', 'h', 'f')) NOT VALID;  -- h, f: facts (above)
ALTER TABLE nexus_memory.text_postings VALIDATE CONSTRAINT text_postings_kind_check;

UPDATE nexus_memory.text_postings AS p
   SET kind = CASE WHEN s.valid_to <= now() THEN 'h' ELSE 'f' END
  FROM nexus_memory.semantic_memories AS s
 WHERE p.kind = 's' AND s.agent_id = p.agent_id AND s.id = p.doc_id
   AND (s.valid_to IS NOT NULL OR s.valid_from > now());
