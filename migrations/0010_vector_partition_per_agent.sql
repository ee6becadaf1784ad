-- One vector partition, and so one HNSW graph, per agent (LIST on agent_id) instead of 32 hash
-- partitions shared by whichever agents hash together.
--
-- Why: a search is always one agent's. In a graph shared with other agents the HNSW scan filters
-- by agent, and it reads about as many more rows as the agent is a minority of the graph. On the
-- search benchmark (1,000,000 episodes of 100 agents, 1 to 7 agents per hash partition), hybrid
-- search took 16 ms (p50) for an agent alone in its partition and 38 ms for one sharing it with
-- six others; one graph per agent makes every agent's search cost what its own size costs, and
-- no neighbour, however large, slows it down or lowers its recall.
--
-- Layout: nexus_parts.<table>_<first 16 hex digits of md5(agent_id)>, created when the agent is
-- registered (an AFTER INSERT trigger on memory_system.agents, db/functions/agents/) and dropped
-- when it is removed; its table comment names the agent. A DEFAULT partition catches any row of an
-- agent without a partition of its own (there should be none: memories reference agents) so that
-- nothing is ever refused or lost. The HNSW index stays defined on the parent (m 16,
-- ef_construction 128, as migration 0009 made it): every partition gets its own graph.
--
-- Cost: each agent adds two tables and their indexes (about ten relations); creating or dropping
-- a partition takes a brief exclusive lock on the parent table, so registering an agent waits for
-- running vector searches. Moving the rows rebuilds every graph: some 13 minutes per million
-- vectors on two cores, during which vector search waits; on a large store, run it in a
-- maintenance window.

DO $$
DECLARE
    t record;
    a record;
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
                embedded_at     timestamptz NOT NULL DEFAULT now()
            ) PARTITION BY LIST (agent_id)$f$, t.tbl, t.idcol);
        EXECUTE format('CREATE TABLE nexus_parts.%I PARTITION OF nexus_memory.%I DEFAULT',
                       t.tbl || '_default', t.tbl);
        EXECUTE format('COMMENT ON TABLE nexus_parts.%I IS %L', t.tbl || '_default',
                       'Vectors of agents without a partition of their own (none: every registered agent has one).');
        FOR a IN SELECT agent_id FROM memory_system.agents ORDER BY agent_id LOOP
            EXECUTE format('CREATE TABLE nexus_parts.%I PARTITION OF nexus_memory.%I FOR VALUES IN (%L)',
                           t.tbl || '_' || left(md5(a.agent_id), 16), t.tbl, a.agent_id);
            EXECUTE format('COMMENT ON TABLE nexus_parts.%I IS %L', t.tbl || '_' || left(md5(a.agent_id), 16),
                           'Vectors of agent ' || a.agent_id);
        END LOOP;
        -- rows first, then the key, the reference and the graphs: one build per partition
        EXECUTE format('INSERT INTO nexus_memory.%1$I SELECT * FROM nexus_memory.%2$I',
                       t.tbl, t.tbl || '_old');
        EXECUTE format('DROP TABLE nexus_memory.%I', t.tbl || '_old');
        EXECUTE format('ALTER TABLE nexus_memory.%1$I ADD PRIMARY KEY (agent_id, %2$I), '
                       'ADD FOREIGN KEY (agent_id, %2$I) REFERENCES nexus_memory.%3$I (agent_id, id) ON DELETE CASCADE',
                       t.tbl, t.idcol, t.src);
        EXECUTE format('CREATE INDEX %I ON nexus_memory.%I USING hnsw (embedding public.vector_cosine_ops) '
                       'WITH (m = 16, ef_construction = 128)', t.tbl || '_embedding_idx', t.tbl);
        EXECUTE format('COMMENT ON TABLE nexus_memory.%I IS %L', t.tbl,
                       t.what || ': model, checksum of the content embedded, embedding (HNSW, cosine). '
                       'List-partitioned by agent_id: a partition and an HNSW graph per agent in nexus_parts '
                       '(<table>_<md5(agent_id), 16 hex digits>), and a DEFAULT partition.');
        EXECUTE format('ANALYZE nexus_memory.%I', t.tbl);
    END LOOP;
END
$$;
