-- Checkpoints: named snapshots of the calling agent's state (the agent API).

CREATE OR REPLACE FUNCTION nexus.save_checkpoint(state jsonb, name text DEFAULT 'default',
                                                 metadata jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF state IS NULL THEN
        RAISE EXCEPTION 'state must not be NULL' USING ERRCODE = 'NX031';
    END IF;
    INSERT INTO consciousness.consciousness_checkpoints AS c (checkpoint_name, state, metadata)
    VALUES (name, state, coalesce(metadata, '{}'))
    RETURNING c.id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION nexus.save_checkpoint(jsonb, text, jsonb) IS
'Saves a snapshot of the calling agent''s state under a name (default ''default''); returns its id.
Errors: NX031 NULL state, NX015 bad name, NX011 state over 16 MiB, NX012 metadata not an object.

MCP: Save a snapshot of your state under a name, to load later with load_checkpoint (to resume a task,
to undo); earlier snapshots of that name are kept. Returns the checkpoint''s id.
- state: The state to save, any JSON value up to 16 MiB, not null. Example: {"step": 3, "todo": ["email ACME"]}.
- name: The snapshot''s name, 1 to 128 characters (default "default"). Example: "invoice_run".
- metadata: Notes about the snapshot, a JSON object up to 64 KiB (default {}). Example: {"reason": "before the deploy"}.';


CREATE OR REPLACE FUNCTION nexus.load_checkpoint(name text DEFAULT 'default')
RETURNS TABLE (id bigint, checkpoint_name text, state jsonb, metadata jsonb, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id, c.checkpoint_name, c.state, c.metadata, c.created_at
      FROM consciousness.consciousness_checkpoints AS c
     WHERE c.agent_id = (current_user::text COLLATE "default") AND c.checkpoint_name = load_checkpoint.name
     ORDER BY c.created_at DESC, c.id DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION nexus.load_checkpoint(text) IS
'The calling agent''s latest checkpoint of that name; no row when there is none.

MCP: Load the latest snapshot saved under a name: its id, state, metadata and when it was saved; null
when there is none.
- name: The snapshot''s name (default "default"). Example: "invoice_run".';


CREATE OR REPLACE FUNCTION nexus.list_checkpoints(name text DEFAULT NULL, limit_n integer DEFAULT 50)
RETURNS TABLE (id bigint, checkpoint_name text, metadata jsonb, state_bytes integer, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 1000, got %', limit_n USING ERRCODE = 'NX031';
    END IF;
    RETURN QUERY
    SELECT c.id, c.checkpoint_name, c.metadata, pg_column_size(c.state), c.created_at
      FROM consciousness.consciousness_checkpoints AS c
     WHERE c.agent_id = (current_user::text COLLATE "default") AND (name IS NULL OR c.checkpoint_name = name)
     ORDER BY c.created_at DESC, c.id DESC
     LIMIT limit_n;
END
$$;
COMMENT ON FUNCTION nexus.list_checkpoints(text, integer) IS
'The calling agent''s checkpoints (of one name, or all), newest first, without their state.

MCP: List your saved snapshots, newest first, with their size (state_bytes) but not their state.
- name: Only snapshots of this name (default: all names). Example: "invoice_run".
- limit_n: How many to list, 1 to 1000 (default 50). Example: 10.';
