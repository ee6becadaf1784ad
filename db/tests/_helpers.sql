-- Test helpers, loaded into the template database only (never by the loader).
CREATE SCHEMA IF NOT EXISTS tests;

-- Registers an agent (login role without a password: tests switch to it with SET ROLE).
CREATE OR REPLACE FUNCTION tests.create_agent(p_name text)
RETURNS text
LANGUAGE sql
AS $$ SELECT (memory_system.agent_add(p_name)).agent_id $$;

-- Runs a data-modifying statement and returns how many rows it touched.
CREATE OR REPLACE FUNCTION tests.affected(p_sql text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_count bigint;
BEGIN
    EXECUTE p_sql;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

-- tests switch to agent roles and still call the helpers
GRANT USAGE ON SCHEMA tests TO PUBLIC;

-- A made-up unit vector of the configured dimension (tests of the queue need no model).
CREATE OR REPLACE FUNCTION tests.fake_vector(p_seed float8 DEFAULT 1)
RETURNS public.vector
LANGUAGE sql
IMMUTABLE
AS $$ SELECT array_agg(CASE WHEN g = 1 THEN p_seed ELSE 0 END ORDER BY g)::float4[]::public.vector
        FROM generate_series(1, 384) AS g $$;
