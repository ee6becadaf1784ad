CREATE OR REPLACE FUNCTION memory_system.agent_remove(
    p_agent_id text,
    p_delete_memories boolean DEFAULT false
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
AS $$
DECLARE
    v_rows bigint := 0;
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent_id), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    SELECT (SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = p_agent_id)
         + (SELECT count(*) FROM nexus_memory.working_memory_contexts WHERE agent_id = p_agent_id)
         + (SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = p_agent_id)
         + (SELECT count(*) FROM consciousness.consciousness_checkpoints WHERE agent_id = p_agent_id)
         + (SELECT count(*) FROM nexus_memory.store_items WHERE agent_id = p_agent_id)
      INTO v_count;
    IF v_count > 0 AND NOT p_delete_memories THEN
        RAISE EXCEPTION 'agent % still has % memory rows', p_agent_id, v_count
            USING ERRCODE = 'NX005',
                  HINT = 'Export them first, or pass p_delete_memories => true (nexus agent remove --delete-memories).';
    END IF;
    DELETE FROM nexus_memory.semantic_memories WHERE agent_id = p_agent_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = p_agent_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.working_memory_contexts WHERE agent_id = p_agent_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM consciousness.consciousness_checkpoints WHERE agent_id = p_agent_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.store_items WHERE agent_id = p_agent_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    -- the import ledger's entries of the agent (source identities, content checksums)
    DELETE FROM memory_system.import_rows WHERE agent_id = p_agent_id;
    DELETE FROM memory_system.import_rejects WHERE agent_id = p_agent_id;
    -- its record of reads (query hashes, maybe query texts): erased with its memories, kept as an
    -- audit record (until the read record's retention) when the agent had none
    IF p_delete_memories THEN
        PERFORM memory_system.reads_erase(p_agent_id);
    END IF;
    -- the BM25 corpus counters (zero by now) have no foreign key to the agent
    DELETE FROM nexus_memory.text_stats WHERE agent_id = p_agent_id;
    DELETE FROM memory_system.agents WHERE agent_id = p_agent_id;
    -- The role is cluster-wide: drop it unless this cluster has other databases using it.
    BEGIN
        EXECUTE format('DROP ROLE %I', p_agent_id);
    EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'role % kept: other databases still depend on it', p_agent_id;
    END;
    RETURN v_rows;
END
$$;

COMMENT ON FUNCTION memory_system.agent_remove(text, boolean) IS
'Unregisters an agent and drops its role. Refuses (NX005) while the agent has memories unless
p_delete_memories is true; returns the number of memory rows deleted. Its import-ledger entries go
too, and with p_delete_memories its record of reads; memory_system.forget_leftovers(NAME) then finds nothing left (docs/privacy.md).
Errors: NX002 unknown agent; NX005 agent has memories. Callers: the owner (nexus agent remove).';
