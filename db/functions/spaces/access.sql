-- Spaces (docs/spaces.md, migration 0019): who may read and write them, and the author of a row.
-- Membership is PostgreSQL role membership in a space's reader and writer roles, looked up at each
-- statement: nothing caches it, so a REVOKE holds from the member's next statement.

CREATE OR REPLACE FUNCTION memory_system._is_member(p_role text)
RETURNS boolean
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$
    -- a role that does not exist (a database restored into another cluster) makes no member,
    -- where pg_has_role would raise an error at every statement
    SELECT coalesce((SELECT pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
                       FROM pg_catalog.pg_roles AS r WHERE r.rolname = p_role), false)
$$;
COMMENT ON FUNCTION memory_system._is_member(text) IS
'Internal: whether the calling role is a member of role p_role (false if there is no such role).';


CREATE OR REPLACE FUNCTION memory_system._member_spaces(p_write boolean)
RETURNS text[]
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$
    -- invoker rights: row-level security on memory_system.spaces shows a member its spaces only
    SELECT coalesce(array_agg(s.space_id), '{}') FROM memory_system.spaces AS s
     WHERE memory_system._is_member(CASE WHEN p_write THEN s.writer_role ELSE s.reader_role END)
$$;
COMMENT ON FUNCTION memory_system._member_spaces(boolean) IS
'Internal: the ids of the spaces the calling role may read (member of their reader role), or with
p_write write (member of their writer role). Used by the row-level security policies of the memory
tables, as an InitPlan: once per statement, not per row.';


CREATE OR REPLACE FUNCTION memory_system._readable_ids()
RETURNS text[]
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$ SELECT ARRAY[current_user::text] || memory_system._member_spaces(false) $$;
COMMENT ON FUNCTION memory_system._readable_ids() IS
'Internal: the agent_ids whose rows the calling agent reads: its own and its spaces''. The read
policy of the memory tables compares agent_id with it (agent_id = ANY (the InitPlan)): one
condition, which an index scan takes as its key and partitions are pruned by at execution.';


CREATE OR REPLACE FUNCTION memory_system._writable_ids()
RETURNS text[]
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$ SELECT ARRAY[current_user::text] || memory_system._member_spaces(true) $$;
COMMENT ON FUNCTION memory_system._writable_ids() IS
'Internal: the agent_ids whose rows the calling agent writes: its own and the spaces it may write.';


CREATE OR REPLACE FUNCTION memory_system._own_id()
RETURNS text[]
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$ SELECT ARRAY[current_user::text] $$;
COMMENT ON FUNCTION memory_system._own_id() IS
'Internal: the calling agent''s own id, as the one-element list the write policies of the tables no
agent writes in a space compare agent_id with.';


CREATE OR REPLACE FUNCTION memory_system._space_id(p_name text, p_write boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id text;
BEGIN
    SELECT s.space_id INTO v_id FROM memory_system.spaces AS s
     WHERE s.name = p_name
       AND memory_system._is_member(CASE WHEN p_write THEN s.writer_role ELSE s.reader_role END);
    IF v_id IS NULL THEN
        -- one error for a space that does not exist, one the caller is not in, and one it may only
        -- read: a name cannot be probed
        RAISE EXCEPTION 'no space % that you may %', coalesce(quote_literal(p_name), 'NULL'),
                        CASE WHEN p_write THEN 'write' ELSE 'read' END
            USING ERRCODE = 'NX080', HINT = 'nexus.spaces() lists the spaces you are in and your rights.';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION memory_system._space_id(text, boolean) IS
'Internal: the id of the space named p_name if the calling agent may read it (p_write: write it).
Errors: NX080 for no such space, a space the caller is not in, or (p_write) one it may only read:
the same error for all three.';


CREATE OR REPLACE FUNCTION memory_system._write_target(p_space text)
RETURNS text
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$
    -- NULL: the caller's own memory
    SELECT CASE WHEN p_space IS NULL THEN current_user::text ELSE memory_system._space_id(p_space, true) END
$$;
COMMENT ON FUNCTION memory_system._write_target(text) IS
'Internal: the agent_id a write goes to: the caller''s own (p_space NULL) or the space it may write
(NX080 otherwise).';


CREATE OR REPLACE FUNCTION memory_system._read_target(p_space text)
RETURNS text
LANGUAGE sql STABLE
SECURITY INVOKER
AS $$
    -- NULL: the caller's own memory
    SELECT CASE WHEN p_space IS NULL THEN current_user::text ELSE memory_system._space_id(p_space) END
$$;
COMMENT ON FUNCTION memory_system._read_target(text) IS
'Internal: the agent_id a read goes to: the caller''s own (p_space NULL) or the space it may read
(NX080 otherwise).';


CREATE OR REPLACE FUNCTION nexus._search_scope(p_spaces text[], p_scope text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids text[];
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('own', 'all', 'spaces') THEN
        RAISE EXCEPTION 'scope must be own, all or spaces, got %', coalesce(quote_literal(p_scope), 'NULL')
            USING ERRCODE = 'NX085';
    END IF;
    IF p_scope = 'all' THEN
        IF p_spaces IS NOT NULL THEN
            RAISE EXCEPTION 'scope all searches every space you may read: name no spaces with it'
                USING ERRCODE = 'NX085';
        END IF;
        RETURN memory_system._readable_ids();
    END IF;
    IF p_scope = 'spaces' AND coalesce(cardinality(p_spaces), 0) = 0 THEN
        RAISE EXCEPTION 'scope spaces needs the spaces to search' USING ERRCODE = 'NX085';
    END IF;
    SELECT coalesce(array_agg(DISTINCT memory_system._space_id(n)), '{}') INTO v_ids FROM unnest(p_spaces) AS n;
    RETURN CASE WHEN p_scope = 'own' THEN ARRAY[current_user::text] ELSE '{}' END || v_ids;
END
$$;
COMMENT ON FUNCTION nexus._search_scope(text[], text) IS
'Internal: the agent_ids a search reads. scope own (the default): the caller''s own memory and the
spaces named in p_spaces; all: its own and every space it may read; spaces: the named spaces only.
Errors: NX080 a named space the caller may not read (or that does not exist), NX085 bad scope.';


CREATE OR REPLACE FUNCTION memory_system._stamp_author()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.author := OLD.author;
    ELSIF EXISTS (SELECT FROM memory_system.agents AS a
                   WHERE a.agent_id = (current_user::text COLLATE "default") AND a.kind = 'agent') THEN
        NEW.author := current_user;
    ELSE
        -- the owner (an import, a restore) keeps the author it gives, else the row's own agent
        NEW.author := coalesce(NEW.author, NEW.agent_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION memory_system._stamp_author() IS
'Trigger: a row''s author is the agent role that inserted it, whatever the caller gave; an update
keeps it. Rows the owner writes (imports) keep the author given, else their own agent.';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['zep_episodic_memory', 'semantic_memories', 'store_items'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER stamp_author BEFORE INSERT OR UPDATE OF author ON nexus_memory.%I '
                       'FOR EACH ROW EXECUTE FUNCTION memory_system._stamp_author()', t);
    END LOOP;
END
$$;
