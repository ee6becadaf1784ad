-- Denser HNSW graphs: ef_construction 128 instead of pgvector's default 64 (m stays 16).
-- At 1,000,000 memories of one agent, the default graph never reaches some true neighbours:
-- recall@10 stops at 0.93 however large ef_search is. With ef_construction 128 it is 0.994 at
-- ef_search 400 (0.967 at 200), with the same index size and latency (measured on the search
-- benchmark's data, 2026-11-27). Building costs about 1.5x: some 13 minutes per million vectors on
-- two cores. Inserts into the graph cost more too.
--
-- The index is defined on the partitioned parent, so it is replaced there: each partition's index
-- is rebuilt. While this migration runs, vector search of the table waits for it (it holds the
-- table's lock); on a large store, run it in a maintenance window.

DROP INDEX nexus_memory.episode_embeddings_embedding_idx;
CREATE INDEX episode_embeddings_embedding_idx ON nexus_memory.episode_embeddings
    USING hnsw (embedding public.vector_cosine_ops) WITH (m = 16, ef_construction = 128);

DROP INDEX nexus_memory.semantic_memory_embeddings_embedding_idx;
CREATE INDEX semantic_memory_embeddings_embedding_idx ON nexus_memory.semantic_memory_embeddings
    USING hnsw (embedding public.vector_cosine_ops) WITH (m = 16, ef_construction = 128);
