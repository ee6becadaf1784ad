-- Every agent has a vector partition (and so an HNSW graph) of its own in each vector table
-- (migration 0010): made when the agent is registered, dropped when it is removed.

CREATE OR REPLACE FUNCTION memory_system._vector_partition(p_table text, p_agent_id text)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT p_table || '_' || left(md5(p_agent_id), 16) $$;
COMMENT ON FUNCTION memory_system._vector_partition(text, text) IS
'Internal: the name (in schema nexus_parts) of an agent''s partition of a vector table.';


CREATE OR REPLACE FUNCTION memory_system._agent_vector_partitions()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t    text;
    part text;
BEGIN
    FOREACH t IN ARRAY ARRAY['episode_embeddings', 'semantic_memory_embeddings', 'store_text_embeddings'] LOOP
        IF TG_OP = 'INSERT' THEN
            part := memory_system._vector_partition(t, NEW.agent_id);
            EXECUTE format('CREATE TABLE IF NOT EXISTS nexus_parts.%I PARTITION OF nexus_memory.%I FOR VALUES IN (%L)',
                           part, t, NEW.agent_id);
            EXECUTE format('COMMENT ON TABLE nexus_parts.%I IS %L', part, 'Vectors of agent ' || NEW.agent_id);
        ELSE
            -- empty by now: an agent's memories (and with them their vectors) go before the agent
            EXECUTE format('DROP TABLE IF EXISTS nexus_parts.%I', memory_system._vector_partition(t, OLD.agent_id));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._agent_vector_partitions() IS
'Trigger on memory_system.agents: creates the agent''s partition of each vector table when it is
registered (nexus_parts.<table>_<md5(agent_id), 16 hex digits>, with its own HNSW graph) and drops
it when the agent is removed.';

CREATE OR REPLACE TRIGGER vector_partitions_insert AFTER INSERT ON memory_system.agents
    FOR EACH ROW EXECUTE FUNCTION memory_system._agent_vector_partitions();
CREATE OR REPLACE TRIGGER vector_partitions_delete AFTER DELETE ON memory_system.agents
    FOR EACH ROW EXECUTE FUNCTION memory_system._agent_vector_partitions();
