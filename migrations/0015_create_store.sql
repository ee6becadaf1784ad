-- The `store` memory kind: LangGraph-style namespaced items (BaseStore), per agent.
--
-- store_items: one row per (agent, namespace, key): a JSON object with its times and an optional
--   time to live. Namespaces and keys are in collation "C" (code-point order, as Python sorts
--   strings); a namespace prefix is then an index range on (agent_id, namespace).
-- store_texts: the texts an item is searched by, one per indexed field path ("content",
--   "facts[0]", ...). They are documents of the BM25 postings (kind 't') and are embedded through
--   the embeddings queue (source_table 'store_texts'), as episodes are. A re-put replaces them.
-- store_text_embeddings: one vector per text, a partition (and HNSW graph) per agent as in 0010.
--
-- The postings' kind and the queue's source_table gain the new values; the checks are added
-- NOT VALID and validated in place (no exclusive lock held while the tables are read).

CREATE TABLE nexus_memory.store_items (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    agent_id    text NOT NULL DEFAULT current_user
                REFERENCES memory_system.agents (agent_id),
    namespace   text[] COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    value       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- time to live: the item expires this long after its last write (or read, when refreshed)
    ttl         interval,
    expires_at  timestamptz,
    PRIMARY KEY (agent_id, id),
    UNIQUE (agent_id, namespace, key),
    CHECK ((ttl IS NULL) = (expires_at IS NULL))
);
COMMENT ON TABLE nexus_memory.store_items IS
    'Store items (LangGraph BaseStore): namespace, key, JSON value, times and an optional TTL, per agent.';
CREATE INDEX store_items_agent_updated_idx
    ON nexus_memory.store_items (agent_id, updated_at DESC, id DESC);
CREATE INDEX store_items_expires_idx
    ON nexus_memory.store_items (expires_at) WHERE expires_at IS NOT NULL;


CREATE TABLE nexus_memory.store_texts (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    agent_id        text NOT NULL DEFAULT current_user
                    REFERENCES memory_system.agents (agent_id),
    item_id         bigint NOT NULL,
    -- the field path the text came from; a path that yields several texts numbers them (path.0, path.1)
    path            text NOT NULL,
    content         text NOT NULL,
    content_sha256  bytea GENERATED ALWAYS AS
                    (sha256(decode(replace(content, '\', '\\'), 'escape'))) STORED,
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,
    PRIMARY KEY (agent_id, id),
    UNIQUE (agent_id, item_id, path),
    FOREIGN KEY (agent_id, item_id)
        REFERENCES nexus_memory.store_items (agent_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE nexus_memory.store_texts IS
    'The texts a store item is searched by (one per indexed field path): BM25 postings kind t, embedded through the queue.';


CREATE TABLE nexus_memory.store_text_embeddings (
    agent_id        text NOT NULL,
    text_id         bigint NOT NULL,
    model           text NOT NULL,
    model_version   text NOT NULL DEFAULT '',
    content_sha256  bytea NOT NULL,
    embedding       public.vector(384) NOT NULL,
    embedded_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY LIST (agent_id);
CREATE TABLE nexus_parts.store_text_embeddings_default
    PARTITION OF nexus_memory.store_text_embeddings DEFAULT;
COMMENT ON TABLE nexus_parts.store_text_embeddings_default IS
    'Vectors of agents without a partition of their own (none: every registered agent has one).';
DO $$
DECLARE
    a record;
BEGIN
    FOR a IN SELECT agent_id FROM memory_system.agents ORDER BY agent_id LOOP
        EXECUTE format('CREATE TABLE nexus_parts.%I PARTITION OF nexus_memory.store_text_embeddings '
                       'FOR VALUES IN (%L)', 'store_text_embeddings_' || left(md5(a.agent_id), 16), a.agent_id);
        EXECUTE format('COMMENT ON TABLE nexus_parts.%I IS %L',
                       'store_text_embeddings_' || left(md5(a.agent_id), 16), 'Vectors of agent ' || a.agent_id);
    END LOOP;
END
$$;
ALTER TABLE nexus_memory.store_text_embeddings
    ADD PRIMARY KEY (agent_id, text_id),
    ADD FOREIGN KEY (agent_id, text_id)
        REFERENCES nexus_memory.store_texts (agent_id, id) ON DELETE CASCADE;
CREATE INDEX store_text_embeddings_embedding_idx ON nexus_memory.store_text_embeddings
    USING hnsw (embedding public.vector_cosine_ops) WITH (m = 16, ef_construction = 128);
COMMENT ON TABLE nexus_memory.store_text_embeddings IS
    'One vector per store text: model, checksum of the content embedded, embedding (HNSW, cosine). '
    'List-partitioned by agent_id: a partition and an HNSW graph per agent in nexus_parts '
    '(<table>_<md5(agent_id), 16 hex digits>), and a DEFAULT partition.';


-- the postings and the queue know the new kind -----------------------------------------------
ALTER TABLE nexus_memory.text_postings DROP CONSTRAINT text_postings_kind_check;
ALTER TABLE nexus_memory.text_postings ADD CONSTRAINT text_postings_kind_check
    CHECK (kind IN ('e', 's', 't')) NOT VALID;  -- e: episode, s: semantic memory, t: store text
ALTER TABLE nexus_memory.text_postings VALIDATE CONSTRAINT text_postings_kind_check;

ALTER TABLE memory_system.embeddings_queue DROP CONSTRAINT embeddings_queue_source_table_check;
ALTER TABLE memory_system.embeddings_queue ADD CONSTRAINT embeddings_queue_source_table_check
    CHECK (source_table IN ('zep_episodic_memory', 'semantic_memories', 'store_texts')) NOT VALID;
ALTER TABLE memory_system.embeddings_queue VALIDATE CONSTRAINT embeddings_queue_source_table_check;
