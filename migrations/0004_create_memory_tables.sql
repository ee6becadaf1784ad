-- Agent-owned memory tables. Every one carries agent_id (defaulting to the calling role)
-- and keeps it in every unique key, so each can later be distributed by agent_id.
-- Vectors live in a side table per embedded kind (one row per memory): writing a vector then
-- touches a narrow row with two indexes, instead of rewriting the content row and re-inserting
-- it into its full-text, metadata and tag indexes; and text search never drags vectors along.

CREATE TABLE nexus_memory.zep_episodic_memory (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    agent_id           text NOT NULL DEFAULT current_user
                       REFERENCES memory_system.agents (agent_id),
    episode_uuid       uuid NOT NULL DEFAULT gen_random_uuid(),
    session_id         text,
    action_type        text NOT NULL DEFAULT 'observation',
    source             text NOT NULL DEFAULT 'text',
    content            text NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    tags               text[] NOT NULL DEFAULT '{}',
    importance         real NOT NULL DEFAULT 0.5,
    valid_at           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- sha256 of the content's UTF-8 bytes (content::bytea would read backslashes as escapes)
    content_sha256     bytea GENERATED ALWAYS AS
                       (sha256(decode(replace(content, '\', '\\'), 'escape'))) STORED,
    content_tsv        tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,
    PRIMARY KEY (agent_id, id),
    UNIQUE (agent_id, episode_uuid)
);
COMMENT ON TABLE nexus_memory.zep_episodic_memory IS
    'Episodes: an agent''s actions, observations and messages (Zep/Letta-compatible fields).';

CREATE INDEX zep_episodic_memory_agent_created_idx
    ON nexus_memory.zep_episodic_memory (agent_id, created_at DESC);
CREATE INDEX zep_episodic_memory_agent_session_idx
    ON nexus_memory.zep_episodic_memory (agent_id, session_id, created_at DESC)
    WHERE session_id IS NOT NULL;
CREATE INDEX zep_episodic_memory_tsv_idx
    ON nexus_memory.zep_episodic_memory USING gin (content_tsv);
CREATE INDEX zep_episodic_memory_metadata_idx
    ON nexus_memory.zep_episodic_memory USING gin (metadata jsonb_path_ops);
CREATE INDEX zep_episodic_memory_tags_idx
    ON nexus_memory.zep_episodic_memory USING gin (tags);


CREATE TABLE nexus_memory.working_memory_contexts (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    agent_id     text NOT NULL DEFAULT current_user
                 REFERENCES memory_system.agents (agent_id),
    context_key  text NOT NULL,
    value        jsonb NOT NULL,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, id),
    UNIQUE (agent_id, context_key)
);
COMMENT ON TABLE nexus_memory.working_memory_contexts IS
    'Per-agent short-lived context: key -> JSON, with an optional expiry.';
CREATE INDEX working_memory_contexts_agent_created_idx
    ON nexus_memory.working_memory_contexts (agent_id, created_at DESC);
CREATE INDEX working_memory_contexts_expires_idx
    ON nexus_memory.working_memory_contexts (expires_at) WHERE expires_at IS NOT NULL;


CREATE TABLE nexus_memory.semantic_memories (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    agent_id           text NOT NULL DEFAULT current_user
                       REFERENCES memory_system.agents (agent_id),
    content            text NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    tags               text[] NOT NULL DEFAULT '{}',
    importance         real NOT NULL DEFAULT 0.5,
    source_episode_id  bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- sha256 of the content's UTF-8 bytes (content::bytea would read backslashes as escapes)
    content_sha256     bytea GENERATED ALWAYS AS
                       (sha256(decode(replace(content, '\', '\\'), 'escape'))) STORED,
    content_tsv        tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED,
    PRIMARY KEY (agent_id, id),
    -- a fact is stored once per agent: deduplicated by checksum
    UNIQUE (agent_id, content_sha256),
    FOREIGN KEY (agent_id, source_episode_id)
        REFERENCES nexus_memory.zep_episodic_memory (agent_id, id) ON DELETE SET NULL (source_episode_id)
);
COMMENT ON TABLE nexus_memory.semantic_memories IS
    'Distilled facts and knowledge per agent, embedded like episodes.';
CREATE INDEX semantic_memories_agent_created_idx
    ON nexus_memory.semantic_memories (agent_id, created_at DESC);
CREATE INDEX semantic_memories_tsv_idx
    ON nexus_memory.semantic_memories USING gin (content_tsv);
CREATE INDEX semantic_memories_metadata_idx
    ON nexus_memory.semantic_memories USING gin (metadata jsonb_path_ops);
CREATE INDEX semantic_memories_tags_idx
    ON nexus_memory.semantic_memories USING gin (tags);


-- The vector of each embedded memory, the model (name and version) that made it and the checksum
-- of the content it was computed from. Written only by memory_system.complete_batch (which refuses stale results).
CREATE TABLE nexus_memory.episode_embeddings (
    agent_id        text NOT NULL,
    episode_id      bigint NOT NULL,
    model           text NOT NULL,
    model_version   text NOT NULL DEFAULT '',
    content_sha256  bytea NOT NULL,
    embedding       public.vector(384) NOT NULL,
    embedded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, episode_id),
    FOREIGN KEY (agent_id, episode_id)
        REFERENCES nexus_memory.zep_episodic_memory (agent_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE nexus_memory.episode_embeddings IS
    'One vector per episode: model, checksum of the content embedded, embedding (HNSW, cosine).';
CREATE INDEX episode_embeddings_embedding_idx
    ON nexus_memory.episode_embeddings USING hnsw (embedding public.vector_cosine_ops);

CREATE TABLE nexus_memory.semantic_memory_embeddings (
    agent_id        text NOT NULL,
    memory_id       bigint NOT NULL,
    model           text NOT NULL,
    model_version   text NOT NULL DEFAULT '',
    content_sha256  bytea NOT NULL,
    embedding       public.vector(384) NOT NULL,
    embedded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, memory_id),
    FOREIGN KEY (agent_id, memory_id)
        REFERENCES nexus_memory.semantic_memories (agent_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE nexus_memory.semantic_memory_embeddings IS
    'One vector per semantic memory: model, checksum of the content embedded, embedding (HNSW, cosine).';
CREATE INDEX semantic_memory_embeddings_embedding_idx
    ON nexus_memory.semantic_memory_embeddings USING hnsw (embedding public.vector_cosine_ops);
