-- Spaces (docs/spaces.md): the operator's functions (nexus space ...) and the few an agent calls
-- about its own spaces. A space is an agents row of kind 'space' (its memories' agent_id) plus a
-- memory_system.spaces row and two NOLOGIN roles: members of reader_role read it, members of
-- writer_role (always readers too) write it.

CREATE OR REPLACE FUNCTION memory_system._space_row(p_name text)
RETURNS memory_system.spaces
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row memory_system.spaces;
BEGIN
    SELECT * INTO v_row FROM memory_system.spaces AS s WHERE s.name = p_name;
    IF v_row.space_id IS NULL THEN
        RAISE EXCEPTION 'no space %', coalesce(quote_literal(p_name), 'NULL') USING ERRCODE = 'NX080';
    END IF;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION memory_system._space_row(text) IS
'Internal: the space named p_name, as the caller may see it (row-level security), or NX080.';


CREATE OR REPLACE FUNCTION memory_system._space_rights(p_right text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_right IS NULL OR p_right NOT IN ('read', 'write') THEN
        RAISE EXCEPTION 'rights must be read or write, got %', coalesce(quote_literal(p_right), 'NULL')
            USING ERRCODE = 'NX085';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._space_rights(text) IS 'Internal: NX085 unless p_right is read or write.';


CREATE OR REPLACE FUNCTION memory_system.space_create(
    p_name             text,
    p_owner            text DEFAULT NULL,
    p_owner_may_grant  boolean DEFAULT false,
    p_description      text DEFAULT '')
RETURNS memory_system.spaces
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_suffix  text := left(replace(gen_random_uuid()::text, '-', ''), 16);
    v_row     memory_system.spaces;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid space name: %', coalesce(quote_literal(p_name), 'NULL') USING ERRCODE = 'NX081',
              HINT = 'Lower-case letters, digits, _ and -, starting with a letter, at most 63 characters.';
    END IF;
    -- names of agents and spaces are one namespace (agent_add takes the same lock)
    PERFORM pg_advisory_xact_lock(hashtext('nexus_agent_and_space_names'));
    IF EXISTS (SELECT FROM memory_system.spaces AS s WHERE s.name = p_name)
       OR EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_name) THEN
        RAISE EXCEPTION 'the name % is taken by an agent or a space', p_name USING ERRCODE = 'NX082';
    END IF;
    IF p_owner IS NOT NULL
       AND NOT EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_owner AND a.kind = 'agent') THEN
        RAISE EXCEPTION 'no agent %', quote_literal(p_owner) USING ERRCODE = 'NX002';
    END IF;
    IF coalesce(p_owner_may_grant, false) AND p_owner IS NULL THEN
        RAISE EXCEPTION 'owner_may_grant needs an owner' USING ERRCODE = 'NX085';
    END IF;
    EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', 'nexus_space_' || v_suffix || '_read');
    EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', 'nexus_space_' || v_suffix || '_write');
    -- the space's rows are owned by this id: its vector partitions come with it (trigger)
    INSERT INTO memory_system.agents (agent_id, kind) VALUES ('space_' || v_suffix, 'space');
    INSERT INTO memory_system.spaces (space_id, name, reader_role, writer_role, owner, owner_may_grant, description)
    VALUES ('space_' || v_suffix, p_name, 'nexus_space_' || v_suffix || '_read',
            'nexus_space_' || v_suffix || '_write', p_owner, coalesce(p_owner_may_grant, false),
            coalesce(p_description, ''))
    RETURNING * INTO v_row;
    IF p_owner IS NOT NULL THEN
        PERFORM memory_system._space_grant_roles(v_row, p_owner, 'write', coalesce(p_owner_may_grant, false));
    END IF;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION memory_system.space_create(text, text, boolean, text) IS
'Creates a space: its id (space_<16 hex digits>), its vector partitions, its reader and writer roles.
p_owner: an agent that gets write; p_owner_may_grant: it may also grant and revoke (nexus.space_grant).
Errors: NX081 invalid name; NX082 the name is an agent''s or a space''s; NX002 unknown owner; NX085
owner_may_grant without an owner. Callers: the owner of the database (nexus space create).';


CREATE OR REPLACE FUNCTION memory_system._space_grant_roles(
    p_space  memory_system.spaces,
    p_agent  text,
    p_right  text,
    p_admin  boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- membership only: no privilege of the role is inherited, nor can the member SET ROLE to it
    EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET FALSE%s', p_space.reader_role, p_agent,
                   CASE WHEN p_admin THEN ', ADMIN TRUE' ELSE '' END);
    IF p_right = 'write' THEN
        EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET FALSE%s', p_space.writer_role, p_agent,
                       CASE WHEN p_admin THEN ', ADMIN TRUE' ELSE '' END);
    ELSIF pg_catalog.pg_has_role(p_agent, p_space.writer_role, 'MEMBER') THEN
        PERFORM memory_system._space_revoke_role(p_space.writer_role, p_agent);
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._space_grant_roles(memory_system.spaces, text, text, boolean) IS
'Internal: makes p_agent a reader (p_right read: and no longer a writer) or a writer and reader of
the space, with ADMIN (it may grant them on) if p_admin. Runs with the caller''s rights.';


CREATE OR REPLACE FUNCTION memory_system._space_revoke_role(p_role text, p_agent text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_grantor text;
BEGIN
    -- every grant of the membership, whoever made it (the operator, or an owner agent)
    FOR v_grantor IN
        SELECT g.rolname FROM pg_catalog.pg_auth_members AS m
          JOIN pg_catalog.pg_roles AS r ON r.oid = m.roleid
          JOIN pg_catalog.pg_roles AS u ON u.oid = m.member
          JOIN pg_catalog.pg_roles AS g ON g.oid = m.grantor
         WHERE r.rolname = p_role AND u.rolname = p_agent
    LOOP
        EXECUTE format('REVOKE %I FROM %I GRANTED BY %I CASCADE', p_role, p_agent, v_grantor);
    END LOOP;
END
$$;
COMMENT ON FUNCTION memory_system._space_revoke_role(text, text) IS
'Internal: takes p_agent out of a space role, whoever granted it (and what it granted on from it).';


CREATE OR REPLACE FUNCTION memory_system._space_forget_agent(p_agent text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- what the agent granted (an owner's grants) is granted again by the caller (the operator), so
    -- that the members keep their rights; then the agent's own memberships go
    FOR r IN SELECT ro.rolname AS role_name, me.rolname AS member, m.admin_option
               FROM pg_catalog.pg_auth_members AS m
               JOIN pg_catalog.pg_roles AS ro ON ro.oid = m.roleid
               JOIN pg_catalog.pg_roles AS me ON me.oid = m.member
               JOIN pg_catalog.pg_roles AS g ON g.oid = m.grantor
               JOIN memory_system.spaces AS s ON ro.rolname IN (s.reader_role, s.writer_role)
              WHERE g.rolname = p_agent AND me.rolname <> p_agent
    LOOP
        EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET FALSE%s', r.role_name, r.member,
                       CASE WHEN r.admin_option THEN ', ADMIN TRUE' ELSE '' END);
        EXECUTE format('REVOKE %I FROM %I GRANTED BY %I', r.role_name, r.member, p_agent);
    END LOOP;
    FOR r IN SELECT s.reader_role, s.writer_role FROM memory_system.spaces AS s LOOP
        PERFORM memory_system._space_revoke_role(r.writer_role, p_agent);
        PERFORM memory_system._space_revoke_role(r.reader_role, p_agent);
    END LOOP;
END
$$;
COMMENT ON FUNCTION memory_system._space_forget_agent(text) IS
'Internal (memory_system.agent_remove): takes an agent out of every space before its role is dropped;
the rights it granted as an owner are granted again by the caller, so that their members keep them.';


CREATE OR REPLACE FUNCTION memory_system.space_grant(p_name text, p_agent text, p_right text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM memory_system._space_rights(p_right);
    IF NOT EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_agent AND a.kind = 'agent') THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(p_agent), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    PERFORM memory_system._space_grant_roles(memory_system._space_row(p_name), p_agent, p_right);
END
$$;
COMMENT ON FUNCTION memory_system.space_grant(text, text, text) IS
'Gives an agent read or write (write includes read) on a space; read takes write back. It holds from
the agent''s next statement. Errors: NX080 no space; NX002 no agent; NX085 rights not read or write.
Callers: the owner of the database (nexus space grant).';


CREATE OR REPLACE FUNCTION memory_system.space_revoke(p_name text, p_agent text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_space memory_system.spaces := memory_system._space_row(p_name);
BEGIN
    PERFORM memory_system._space_revoke_role(v_space.writer_role, p_agent);
    PERFORM memory_system._space_revoke_role(v_space.reader_role, p_agent);
END
$$;
COMMENT ON FUNCTION memory_system.space_revoke(text, text) IS
'Takes every right on a space from an agent (whoever granted it): from its next statement on, the
agent neither reads nor writes the space. Errors: NX080 no space. Callers: the owner of the database
(nexus space revoke).';


CREATE OR REPLACE FUNCTION memory_system._space_members(p_space memory_system.spaces)
RETURNS TABLE (agent_id text, rights text, may_grant boolean)
LANGUAGE sql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.rolname::text,
           CASE WHEN bool_or(r.rolname = p_space.writer_role) THEN 'write' ELSE 'read' END,
           bool_or(m.admin_option)
      FROM pg_catalog.pg_auth_members AS m
      JOIN pg_catalog.pg_roles AS r ON r.oid = m.roleid
      JOIN pg_catalog.pg_roles AS u ON u.oid = m.member
     WHERE r.rolname IN (p_space.reader_role, p_space.writer_role)
     GROUP BY u.rolname
     ORDER BY 1
$$;
COMMENT ON FUNCTION memory_system._space_members(memory_system.spaces) IS
'Internal: the members of a space: agent, rights (read|write) and whether it may grant them on.';


CREATE OR REPLACE FUNCTION memory_system.space_members(p_name text)
RETURNS TABLE (agent_id text, rights text, may_grant boolean)
LANGUAGE sql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM memory_system._space_members(memory_system._space_row(p_name)) $$;
COMMENT ON FUNCTION memory_system.space_members(text) IS
'The members of a space: agent, rights (read|write), may_grant. Errors: NX080 no space. Callers: the
owner of the database (nexus space members).';


CREATE OR REPLACE FUNCTION memory_system.space_list()
RETURNS TABLE (name text, space_id text, owner text, owner_may_grant boolean, readers bigint, writers bigint,
               memories bigint, created_at timestamptz, description text)
LANGUAGE sql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.name, s.space_id, s.owner, s.owner_may_grant,
           (SELECT count(*) FROM memory_system._space_members(s) AS m WHERE m.rights = 'read'),
           (SELECT count(*) FROM memory_system._space_members(s) AS m WHERE m.rights = 'write'),
           (SELECT count(*) FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = s.space_id)
           + (SELECT count(*) FROM nexus_memory.semantic_memories AS f WHERE f.agent_id = s.space_id)
           + (SELECT count(*) FROM nexus_memory.store_items AS i WHERE i.agent_id = s.space_id),
           s.created_at, s.description
      FROM memory_system.spaces AS s
     ORDER BY s.name
$$;
COMMENT ON FUNCTION memory_system.space_list() IS
'Every space: name, id, owner, whether it may grant, how many readers (read only) and writers, its
memories (episodes, facts and store items). Callers: the owner of the database (nexus space list).';


CREATE OR REPLACE FUNCTION memory_system.space_drop(p_name text, p_delete_memories boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_space    memory_system.spaces := memory_system._space_row(p_name);
    v_members  bigint := (SELECT count(*) FROM memory_system._space_members(v_space));
    v_rows     bigint := 0;
    v_count    bigint;
BEGIN
    SELECT (SELECT count(*) FROM nexus_memory.zep_episodic_memory WHERE agent_id = v_space.space_id)
         + (SELECT count(*) FROM nexus_memory.semantic_memories WHERE agent_id = v_space.space_id)
         + (SELECT count(*) FROM nexus_memory.store_items WHERE agent_id = v_space.space_id)
      INTO v_count;
    IF (v_count > 0 OR v_members > 0) AND NOT coalesce(p_delete_memories, false) THEN
        RAISE EXCEPTION 'space % still has % members and % memories', p_name, v_members, v_count
            USING ERRCODE = 'NX084',
                  HINT = 'Revoke its members and export its memories first, or pass p_delete_memories => true (nexus space drop --delete-memories).';
    END IF;
    DELETE FROM nexus_memory.semantic_memories WHERE agent_id = v_space.space_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.zep_episodic_memory WHERE agent_id = v_space.space_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.store_items WHERE agent_id = v_space.space_id;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_rows := v_rows + v_count;
    DELETE FROM nexus_memory.text_stats WHERE agent_id = v_space.space_id;
    -- the spaces row goes with the agents row (ON DELETE CASCADE), the partitions by trigger
    DELETE FROM memory_system.agents WHERE agent_id = v_space.space_id;
    -- dropping the roles ends every membership at once
    EXECUTE format('DROP ROLE %I', v_space.writer_role);
    EXECUTE format('DROP ROLE %I', v_space.reader_role);
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION memory_system.space_drop(text, boolean) IS
'Drops a space, its roles (every membership with them) and its vector partitions. Refuses (NX084)
while it has members or memories unless p_delete_memories is true; returns the memory rows deleted.
Errors: NX080 no space; NX084 members or memories left. Callers: the owner of the database (nexus
space drop).';


-- what an agent may do about its own spaces ---------------------------------------------------------
CREATE OR REPLACE FUNCTION nexus.spaces()
RETURNS TABLE (space text, rights text, owner text, may_grant boolean, created_at timestamptz,
               description text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- row-level security shows the caller the spaces it is in, and no other
    SELECT s.name,
           CASE WHEN memory_system._is_member(s.writer_role) THEN 'write' ELSE 'read' END,
           s.owner, s.owner = current_user AND s.owner_may_grant, s.created_at, s.description
      FROM memory_system.spaces AS s
     WHERE memory_system._is_member(s.reader_role)
     ORDER BY s.name
$$;
COMMENT ON FUNCTION nexus.spaces() IS
'The spaces the calling agent is in: name, its rights (read or write), the owner agent, whether the
caller may grant rights on it (owner_may_grant, for its owner), when it was made. Spaces it is not
in never appear.

MCP: List the shared spaces you are in and what you may do in each: "read" (recall finds their
memories: pass spaces or scope "all") or "write" (remember and remember_fact can store there: pass
space). Your own memory is private and is not listed.';


CREATE OR REPLACE FUNCTION memory_system._space_owned(p_name text, p_agent text)
RETURNS memory_system.spaces
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_space memory_system.spaces;
BEGIN
    PERFORM nexus.current_agent();
    -- a space the caller is not in is no space to it (NX080, as for one that does not exist)
    v_space := memory_system._space_row(p_name);
    IF v_space.owner IS DISTINCT FROM current_user OR NOT v_space.owner_may_grant OR p_agent = current_user THEN
        RAISE EXCEPTION 'only the owner of space % may grant or revoke rights on it, if the operator allowed it',
                        p_name USING ERRCODE = 'NX083';
    END IF;
    RETURN v_space;
END
$$;
COMMENT ON FUNCTION memory_system._space_owned(text, text) IS
'Internal: the space p_name, if the calling agent is its owner and may grant (NX083 otherwise, or if
p_agent is the caller itself; NX080 if it is not in the space).';


CREATE OR REPLACE FUNCTION nexus.space_grant(space text, agent text, rights text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_space memory_system.spaces;
BEGIN
    PERFORM memory_system._space_rights(rights);
    v_space := memory_system._space_owned(space, agent);
    IF agent IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = agent)
       OR NOT pg_catalog.pg_has_role(agent, 'nexus_agent', 'MEMBER') THEN
        RAISE EXCEPTION 'no agent %', coalesce(quote_literal(agent), 'NULL') USING ERRCODE = 'NX002';
    END IF;
    BEGIN
        -- with the owner's own rights: its ADMIN option on the space's roles is what allows it
        PERFORM memory_system._space_grant_roles(v_space, agent, rights);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'only the owner of space % may grant on it, if the operator allowed it', space
            USING ERRCODE = 'NX083';
    END;
END
$$;
COMMENT ON FUNCTION nexus.space_grant(text, text, text) IS
'The owner of a space, if the operator allowed it (nexus space create --owner-may-grant), gives another
agent read or write on it (read takes write back). PostgreSQL itself checks the right: the owner holds
the space''s roles WITH ADMIN. Errors: NX080 no space you are in; NX083 not its owner, or not
allowed to grant, or granting to yourself; NX002 no such agent; NX085 rights not read or write.';


CREATE OR REPLACE FUNCTION nexus.space_revoke(space text, agent text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_space memory_system.spaces;
BEGIN
    v_space := memory_system._space_owned(space, agent);
    BEGIN
        EXECUTE format('REVOKE %I FROM %I CASCADE', v_space.writer_role, agent);
        EXECUTE format('REVOKE %I FROM %I CASCADE', v_space.reader_role, agent);
    EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
        RAISE EXCEPTION 'only the owner of space % may revoke on it, if the operator allowed it', space
            USING ERRCODE = 'NX083';
    END;
END
$$;
COMMENT ON FUNCTION nexus.space_revoke(text, text) IS
'The owner of a space, if the operator allowed it, takes back the rights it granted to an agent on
the space. Errors: NX080 no space you are in; NX083 not its owner, not allowed, or yourself.';
