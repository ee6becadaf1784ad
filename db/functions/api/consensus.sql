-- Consensus: shared keys every agent reads, written by compare-and-set on their version (the agent API).

CREATE OR REPLACE FUNCTION nexus.consensus_read(key text)
RETURNS TABLE (consensus_key text, value jsonb, version bigint, updated_by text, updated_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.consensus_key, d.value, d.version, d.updated_by, d.updated_at
      FROM consciousness.distributed_consensus AS d
     WHERE d.consensus_key = consensus_read.key
$$;
COMMENT ON FUNCTION nexus.consensus_read(text) IS
'A shared consensus key: value, version, who wrote it last and when; no row when it does not exist.

MCP: Read a key shared by all agents: its value, its version, who wrote it last and when; null when it
does not exist. Give its version to consensus_cas to change it.
- key: The shared key, 1 to 256 characters. Example: "leader".';


CREATE OR REPLACE FUNCTION nexus.consensus_cas(key text, expected_version bigint, value jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_version bigint;
    v_current bigint;
BEGIN
    PERFORM nexus.current_agent();
    IF value IS NULL THEN
        RAISE EXCEPTION 'value must not be NULL' USING ERRCODE = 'NX031';
    END IF;
    IF expected_version IS NULL OR expected_version < 0 THEN
        RAISE EXCEPTION 'expected_version must be 0 (create) or the version read, got %', expected_version
            USING ERRCODE = 'NX031';
    END IF;
    IF expected_version = 0 THEN
        INSERT INTO consciousness.distributed_consensus AS d (consensus_key, value)
        VALUES (key, value)
        ON CONFLICT (consensus_key) DO NOTHING
        RETURNING d.version INTO v_version;
    ELSE
        UPDATE consciousness.distributed_consensus AS d
           SET value = consensus_cas.value
         WHERE d.consensus_key = key AND d.version = expected_version
        RETURNING d.version INTO v_version;
    END IF;
    IF v_version IS NULL THEN
        SELECT d.version INTO v_current FROM consciousness.distributed_consensus AS d
         WHERE d.consensus_key = key;
        RAISE EXCEPTION 'consensus key % is at version %, not %', key, coalesce(v_current, 0), expected_version
            USING ERRCODE = 'NX035', DETAIL = format('current_version=%s', coalesce(v_current, 0)),
                  HINT = 'Read the key again (nexus.consensus_read) and retry with its version.';
    END IF;
    RETURN v_version;
END
$$;
COMMENT ON FUNCTION nexus.consensus_cas(text, bigint, jsonb) IS
'Compare-and-set on a shared key: writes value only if the key is at expected_version (0: the key
must not exist yet) and returns the new version. The write is signed with the calling agent.
Errors: NX035 version conflict (DETAIL current_version=N; 0 means absent), NX031 bad argument,
NX015 bad key, NX011 value over 256 KiB.

MCP: Change a key shared by all agents, safely: the value is written only if the key is still at the
version you read (0: create it; it must not exist yet). Returns the new version. If another agent wrote
first, the error NX035 says the version now ("current_version=N"): read the key again and decide.
- key: The shared key, 1 to 256 characters. Example: "leader".
- expected_version: The version you read with consensus_read, or 0 to create the key. Example: 3.
- value: The new value, any JSON value up to 256 KiB, not null. Example: "scout".';
