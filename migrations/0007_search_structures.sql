-- What hybrid search needs beyond the memory tables:
--
-- 1. Vectors partitioned by agent. Search is per agent (row-level security), and a filtered scan
--    of one HNSW graph shared by every agent is slow and loses recall once an agent holds a small
--    share of the rows. Hash partitions on agent_id, each with its own HNSW index, keep an agent's
--    vectors in a graph shared with few others; the planner prunes to one partition per query.
--    The partitions live in schema nexus_parts, which no role but the owner may use: everyone
--    reaches vectors through the parent table and its policies.
-- 2. An inverted index kept as a table (BM25 over term statistics in the database): one row per
--    (agent, lexeme, memory) with the term frequency and the document length, read by index-only
--    scans. IDF is applied at query time so scores never drift as the corpus grows. Natural-language
--    queries need OR semantics, which a GIN index over tsvector cannot serve fast at a million rows.
-- 3. Per-agent corpus statistics (documents and tokens) for BM25's IDF and average length, kept in
--    a few slots per agent so that concurrent writers of one agent do not queue on one row.

CREATE SCHEMA nexus_parts;
COMMENT ON SCHEMA nexus_parts IS
    'Partitions of partitioned tables. No role but the owner uses it: go through the parent tables.';
REVOKE ALL ON SCHEMA nexus_parts FROM PUBLIC;

-- 1. vectors by agent -------------------------------------------------------------------------
DO $$
DECLARE
    t record;
    i int;
BEGIN
    FOR t IN SELECT * FROM (VALUES
            ('episode_embeddings', 'episode_id', 'zep_episodic_memory', 'One vector per episode'),
            ('semantic_memory_embeddings', 'memory_id', 'semantic_memories', 'One vector per semantic memory'))
            AS v(tbl, idcol, src, what)
    LOOP
        EXECUTE format('ALTER TABLE nexus_memory.%I RENAME TO %I', t.tbl, t.tbl || '_old');
        EXECUTE format('ALTER INDEX nexus_memory.%I RENAME TO %I', t.tbl || '_pkey', t.tbl || '_old_pkey');
        EXECUTE format('ALTER INDEX nexus_memory.%I RENAME TO %I',
                       t.tbl || '_embedding_idx', t.tbl || '_old_embedding_idx');
        EXECUTE format($f$
            CREATE TABLE nexus_memory.%1$I (
                agent_id        text NOT NULL,
                %2$I            bigint NOT NULL,
                model           text NOT NULL,
                model_version   text NOT NULL DEFAULT '',
                content_sha256  bytea NOT NULL,
                embedding       public.vector(384) NOT NULL,
                embedded_at     timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (agent_id, %2$I),
                FOREIGN KEY (agent_id, %2$I)
                    REFERENCES nexus_memory.%3$I (agent_id, id) ON DELETE CASCADE
            ) PARTITION BY HASH (agent_id)$f$, t.tbl, t.idcol, t.src);
        FOR i IN 0..31 LOOP
            EXECUTE format('CREATE TABLE nexus_parts.%I PARTITION OF nexus_memory.%I '
                           'FOR VALUES WITH (MODULUS 32, REMAINDER %s)',
                           t.tbl || '_p' || lpad(i::text, 2, '0'), t.tbl, i);
        END LOOP;
        EXECUTE format('CREATE INDEX %I ON nexus_memory.%I USING hnsw (embedding public.vector_cosine_ops)',
                       t.tbl || '_embedding_idx', t.tbl);
        EXECUTE format('INSERT INTO nexus_memory.%1$I SELECT * FROM nexus_memory.%2$I',
                       t.tbl, t.tbl || '_old');
        EXECUTE format('DROP TABLE nexus_memory.%I', t.tbl || '_old');
        EXECUTE format('COMMENT ON TABLE nexus_memory.%I IS %L', t.tbl,
                       t.what || ': model, checksum of the content embedded, embedding (HNSW, cosine). '
                       'Hash-partitioned by agent_id (32 partitions in nexus_parts, an HNSW graph each).');
    END LOOP;
END
$$;


-- 2. the inverted index ----------------------------------------------------------------------
CREATE TABLE nexus_memory.text_postings (
    agent_id  text NOT NULL,
    lexeme    text NOT NULL,
    kind      "char" NOT NULL CHECK (kind IN ('e', 's')),  -- e: episode, s: semantic memory
    doc_id    bigint NOT NULL,
    tf        integer NOT NULL,   -- occurrences of the lexeme in the memory's content
    dl        integer NOT NULL,   -- the memory's length in indexed tokens
    PRIMARY KEY (agent_id, lexeme, kind, doc_id) INCLUDE (tf, dl)
) WITH (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
COMMENT ON TABLE nexus_memory.text_postings IS
    'Inverted index for BM25 text search: one row per (agent, lexeme, memory), kept by trigger from content_tsv.';


-- 3. corpus statistics -----------------------------------------------------------------------
CREATE TABLE nexus_memory.text_stats (
    agent_id  text NOT NULL,
    slot      smallint NOT NULL,
    docs      bigint NOT NULL DEFAULT 0,
    tokens    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, slot)
);
COMMENT ON TABLE nexus_memory.text_stats IS
    'Per-agent text corpus size (memories and indexed tokens) for BM25; summed over a few slots per agent.';

-- fill both from what exists already
CREATE TEMP TABLE _docs ON COMMIT DROP AS
SELECT agent_id, 'e'::"char" AS kind, id, content_tsv FROM nexus_memory.zep_episodic_memory
UNION ALL
SELECT agent_id, 's'::"char", id, content_tsv FROM nexus_memory.semantic_memories;

INSERT INTO nexus_memory.text_postings (agent_id, lexeme, kind, doc_id, tf, dl)
SELECT d.agent_id, l.lexeme, d.kind, d.id, coalesce(array_length(l.positions, 1), 1),
       sum(coalesce(array_length(l.positions, 1), 1)) OVER (PARTITION BY d.agent_id, d.kind, d.id)
  FROM _docs AS d, unnest(d.content_tsv) AS l;

INSERT INTO nexus_memory.text_stats (agent_id, slot, docs, tokens)
SELECT d.agent_id, 0, count(*),
       coalesce(sum((SELECT sum(coalesce(array_length(l.positions, 1), 1)) FROM unnest(d.content_tsv) AS l)), 0)
  FROM _docs AS d
 GROUP BY d.agent_id;
