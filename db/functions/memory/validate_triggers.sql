-- BEFORE INSERT/UPDATE triggers: the same checks for direct DML and for the API functions.

CREATE OR REPLACE FUNCTION memory_system._validate_memory_text()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    -- 256 KiB keeps the full-text vector of any content under its 1 MB limit
    v_limit bigint := 262144;
BEGIN
    IF TG_OP = 'INSERT' OR NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN
        PERFORM memory_system._check_agent(NEW.agent_id);
    END IF;
    -- nothing to remember, search or embed: refused rather than stored as a memory of nothing
    IF NEW.content !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'content must not be empty or whitespace only' USING ERRCODE = 'NX015';
    END IF;
    -- an import that keeps oversize content whole (nexus import legacy --adapt oversize) sets its
    -- own limit for its transaction; only the tables' owner may use it (the session's user and the
    -- current one), never an agent, not even through a SECURITY DEFINER function
    IF octet_length(NEW.content) > v_limit
       AND coalesce(current_setting('nexus.import_max_content_bytes', true), '') <> ''
       AND pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class AS c
                                       WHERE c.oid = TG_RELID), 'USAGE')
       AND pg_has_role(session_user, (SELECT c.relowner FROM pg_catalog.pg_class AS c
                                       WHERE c.oid = TG_RELID), 'USAGE') THEN
        v_limit := current_setting('nexus.import_max_content_bytes')::bigint;
    END IF;
    PERFORM memory_system._check_size('content', octet_length(NEW.content), v_limit);
    PERFORM memory_system._check_json_object('metadata', NEW.metadata, 65536);
    PERFORM memory_system._check_tags(NEW.tags);
    IF NEW.importance IS NULL OR NOT NEW.importance BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION 'importance must be between 0 and 1, got %', NEW.importance
            USING ERRCODE = 'NX015';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_memory_text() IS
'Trigger: validates an episode or semantic memory row (agent NX001, sizes NX011: content up to
256 KiB, or up to an import''s own limit for the tables'' owner during nexus import legacy --adapt
oversize; metadata NX012, empty or whitespace-only content, tags and importance NX015) and stamps
updated_at.';

-- not on updates of the embedding columns alone: those are the workers' and change no content
CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE OF agent_id, session_id, action_type, source, content, metadata, tags,
                               importance, valid_at
    ON nexus_memory.zep_episodic_memory
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_memory_text();
CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE OF agent_id, content, metadata, tags, importance, source_episode_id
    ON nexus_memory.semantic_memories
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_memory_text();


-- the key and valid time of a fact (docs/facts.md); the table's CHECKs and exclusion constraint
-- hold the rest
CREATE OR REPLACE FUNCTION memory_system._validate_fact()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM memory_system._check_fact_key(NEW.fact_key);
    IF NEW.valid_to < NEW.valid_from THEN
        RAISE EXCEPTION 'a fact cannot stop holding before it began' USING ERRCODE = 'NX037',
            DETAIL = format('valid_from %s, valid_to %s', NEW.valid_from, NEW.valid_to);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_fact() IS
'Trigger: validates a fact''s key (NX036: 1 to 256 characters, no surrounding whitespace) and valid
time (NX037: valid_to before valid_from).';

CREATE OR REPLACE TRIGGER validate_fact
    BEFORE INSERT OR UPDATE OF fact_key, valid_from, valid_to
    ON nexus_memory.semantic_memories
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_fact();


CREATE OR REPLACE FUNCTION memory_system._validate_working_memory()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.agent_id IS DISTINCT FROM OLD.agent_id THEN
        PERFORM memory_system._check_agent(NEW.agent_id);
    END IF;
    IF NEW.context_key IS NULL OR length(NEW.context_key) NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'context key must be 1 to 256 characters' USING ERRCODE = 'NX015';
    END IF;
    PERFORM memory_system._check_size('value', octet_length(NEW.value::text), 262144);
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_working_memory() IS
'Trigger: validates a working-memory row (agent NX001, key NX015, value size NX011).';

CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE ON nexus_memory.working_memory_contexts
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_working_memory();


CREATE OR REPLACE FUNCTION memory_system._validate_checkpoint()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM memory_system._check_agent(NEW.agent_id);
    IF NEW.checkpoint_name IS NULL OR length(NEW.checkpoint_name) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION 'checkpoint name must be 1 to 128 characters' USING ERRCODE = 'NX015';
    END IF;
    PERFORM memory_system._check_size('state', octet_length(NEW.state::text), 16777216);
    PERFORM memory_system._check_json_object('metadata', NEW.metadata, 65536);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_checkpoint() IS
'Trigger: validates a checkpoint (agent NX001, name NX015, state size NX011, metadata NX012).';

CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE ON consciousness.consciousness_checkpoints
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_checkpoint();


CREATE OR REPLACE FUNCTION memory_system._validate_consensus()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- a write is always signed by the agent making it, and every update is a new version
    IF EXISTS (SELECT FROM memory_system.agents WHERE agent_id = (current_user::text COLLATE "default")) THEN
        NEW.updated_by := current_user;
    END IF;
    PERFORM memory_system._check_agent(NEW.updated_by);
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
    ELSE
        NEW.version := 1;
    END IF;
    IF NEW.consensus_key IS NULL OR length(NEW.consensus_key) NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'consensus key must be 1 to 256 characters' USING ERRCODE = 'NX015';
    END IF;
    PERFORM memory_system._check_size('value', octet_length(NEW.value::text), 262144);
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._validate_consensus() IS
'Trigger: signs a consensus write with the writing agent, numbers versions (1, then +1 per update)
and validates it (writer NX001, key NX015, value size NX011).';

CREATE OR REPLACE TRIGGER validate_row
    BEFORE INSERT OR UPDATE ON consciousness.distributed_consensus
    FOR EACH ROW EXECUTE FUNCTION memory_system._validate_consensus();
