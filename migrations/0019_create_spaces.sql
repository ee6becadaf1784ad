-- Spaces (docs/spaces.md): memory that several agents share, with read and write grants.
--
-- A space is a row of memory_system.agents of kind 'space' with an opaque id (space_<16 hex
-- digits>): its memories are rows of the memory tables with agent_id = that id, so a space gets
-- its own vector partitions and HNSW graphs (the trigger of 0010), its own BM25 corpus, and one
-- current fact per key (the facts' exclusion constraint is per agent_id). Nothing in the
-- catalogs, which every role can read, carries its name: partitions are named and commented by
-- the id, and its two NOLOGIN roles (readers, writers) by a random suffix.
--
-- Who may read or write a space is PostgreSQL role membership (in the reader or writer role): the
-- row-level security policies of the memory tables look it up at each statement, so a REVOKE
-- holds from the member's next statement.
ALTER TABLE memory_system.agents
    ADD COLUMN kind text NOT NULL DEFAULT 'agent' CHECK (kind IN ('agent', 'space'));
COMMENT ON COLUMN memory_system.agents.kind IS
    'agent: a login role''s own memory; space: memory shared by its members (memory_system.spaces).';

CREATE TABLE memory_system.spaces (
    space_id         text PRIMARY KEY REFERENCES memory_system.agents (agent_id) ON DELETE CASCADE,
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    reader_role      text NOT NULL UNIQUE,
    writer_role      text NOT NULL UNIQUE,
    owner            text REFERENCES memory_system.agents (agent_id) ON DELETE SET NULL,
    -- may the owner give and take back rights on it (nexus.space_grant)
    owner_may_grant
                     boolean NOT NULL DEFAULT false,
    description      text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memory_system.spaces IS
    'Shared memories: name, the agents-row id that owns their rows, the NOLOGIN roles whose members read
and write them, and the owner agent (who may give rights only if owner_may_grant).';

-- the agent that wrote a row (the role it ran as), set by a trigger and never by the caller.
-- NULL on rows written before 0019: the row's own agent wrote them.
ALTER TABLE nexus_memory.zep_episodic_memory ADD COLUMN author text;
ALTER TABLE nexus_memory.semantic_memories ADD COLUMN author text;
ALTER TABLE nexus_memory.store_items ADD COLUMN author text;

-- Functions whose signature changed with spaces (a space to write to, spaces to search, the
-- space and author of each hit): the old signatures go (as in 0016); db/functions/ makes the new.
DROP FUNCTION IF EXISTS nexus.memory_search(text, public.vector, integer, text[], text, timestamptz, timestamptz,
                                            text[], jsonb, text, integer, float8, float8, float8, interval,
                                            integer, integer, float8, integer, timestamptz, boolean);
DROP FUNCTION IF EXISTS nexus.text_candidates(text, text[], integer, integer, float8, float8, timestamptz, boolean);
DROP FUNCTION IF EXISTS nexus._memory_search_text(text, "char"[], text, integer, integer, text, timestamptz,
                                                  timestamptz, text[], jsonb, timestamptz);
DROP FUNCTION IF EXISTS nexus._memory_search_vector(public.vector, "char"[], integer, text, timestamptz,
                                                    timestamptz, text[], jsonb, timestamptz);
DROP FUNCTION IF EXISTS nexus._session_neighbours(bigint, text, integer);
DROP FUNCTION IF EXISTS nexus._session_context(bigint, text, integer);
DROP FUNCTION IF EXISTS nexus._neighbour_credit("char"[], bigint[], "char"[], bigint[], float8, float8, integer,
                                                float8);
DROP FUNCTION IF EXISTS nexus._memory_search_fuse(text, tsquery, "char"[], bigint[], float8[], "char"[], bigint[],
                                                  float8[], bigint[], float8[], integer, integer, float8, float8,
                                                  float8, interval, integer);
DROP FUNCTION IF EXISTS nexus.record_episode(text, text, jsonb, text[], real, text, text, timestamptz);
DROP FUNCTION IF EXISTS nexus.remember_fact(text, jsonb, text[], real, bigint, text, bigint, timestamptz);
DROP FUNCTION IF EXISTS nexus.recent_episodes(integer, text, timestamptz, timestamptz, text[], timestamptz, bigint);
DROP FUNCTION IF EXISTS nexus.store_put(text[], text, jsonb, jsonb, interval);
DROP FUNCTION IF EXISTS nexus.store_get(text[], text, boolean);
DROP FUNCTION IF EXISTS nexus.store_delete(text[], text);
DROP FUNCTION IF EXISTS nexus.store_search(text[], text, public.vector, jsonb, integer, integer, boolean, integer,
                                           integer, integer);
DROP FUNCTION IF EXISTS nexus.store_list_namespaces(text[], text[], integer, integer, integer);
DROP FUNCTION IF EXISTS nexus._store_search_text(text, boolean, text[], text[], timestamptz, text[], text[], jsonb[],
                                                 integer, integer, integer);
DROP FUNCTION IF EXISTS nexus._store_search_vector(public.vector, boolean, text[], text[], timestamptz, text[],
                                                   text[], jsonb[], integer);
DROP FUNCTION IF EXISTS nexus.memory_stats();
