-- Input checks shared by the validation triggers and the API functions.
-- Each raises one of our SQLSTATEs (docs/errors.md), so bad input never reaches a table.

CREATE OR REPLACE FUNCTION memory_system._check_agent(p_agent_id text)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_agent_id IS NULL
       OR NOT EXISTS (SELECT FROM memory_system.agents WHERE agent_id = p_agent_id) THEN
        RAISE EXCEPTION 'agent % is not registered', coalesce(quote_literal(p_agent_id), 'NULL')
            USING ERRCODE = 'NX001', HINT = 'Register it first: nexus agent add NAME.';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._check_agent(text) IS
'Raises NX001 unless the agent is registered. Internal: used by validation triggers.';

CREATE OR REPLACE FUNCTION memory_system._check_size(p_what text, p_bytes bigint, p_limit bigint)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_bytes > p_limit THEN
        RAISE EXCEPTION '% is % bytes, over the limit of % bytes', p_what, p_bytes, p_limit
            USING ERRCODE = 'NX011';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._check_size(text, bigint, bigint) IS
'Raises NX011 (payload too large) when p_bytes exceeds p_limit. Internal.';

CREATE OR REPLACE FUNCTION memory_system._check_json_object(p_what text, p_value jsonb, p_limit bigint)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_value IS NOT NULL AND jsonb_typeof(p_value) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object, got %', p_what, jsonb_typeof(p_value)
            USING ERRCODE = 'NX012';
    END IF;
    PERFORM memory_system._check_size(p_what, octet_length(p_value::text), p_limit);
END
$$;
COMMENT ON FUNCTION memory_system._check_json_object(text, jsonb, bigint) IS
'Raises NX012 unless p_value is a JSON object (or NULL), NX011 when it is larger than p_limit. Internal.';

CREATE OR REPLACE FUNCTION memory_system._check_tags(p_tags text[])
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF cardinality(p_tags) > 64 THEN
        RAISE EXCEPTION 'at most 64 tags, got %', cardinality(p_tags) USING ERRCODE = 'NX015';
    END IF;
    IF EXISTS (SELECT FROM unnest(p_tags) AS t WHERE t IS NULL OR length(t) NOT BETWEEN 1 AND 64) THEN
        RAISE EXCEPTION 'tags must be non-empty strings of at most 64 characters'
            USING ERRCODE = 'NX015';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._check_tags(text[]) IS
'Raises NX015 for more than 64 tags or a NULL, empty or over-64-character tag. Internal.';

CREATE OR REPLACE FUNCTION memory_system._check_fact_key(p_key text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF length(p_key) NOT BETWEEN 1 AND 256 OR p_key ~ '^[[:space:]]|[[:space:]]$' THEN
        RAISE EXCEPTION 'a fact key must be 1 to 256 characters, without surrounding whitespace'
            USING ERRCODE = 'NX036', DETAIL = format('key %s', left(quote_literal(p_key), 80)),
                  HINT = 'A key names what the fact is about, e.g. user.city.';
    END IF;
END
$$;
COMMENT ON FUNCTION memory_system._check_fact_key(text) IS
'Raises NX036 for a fact key that is empty, over 256 characters, or starts or ends with whitespace
(NULL, no key, passes). Internal.';

-- an as_of given as text (an MCP argument, a form field): a timestamp, or NX039
CREATE OR REPLACE FUNCTION memory_system._as_of(p_value text)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    ELSIF NOT pg_input_is_valid(p_value, 'timestamptz') THEN
        RAISE EXCEPTION 'as_of must be a timestamp, got %', left(quote_literal(p_value), 80)
            USING ERRCODE = 'NX039', HINT = 'An ISO 8601 time, e.g. 2025-03-01T12:00:00Z.';
    END IF;
    RETURN p_value::timestamptz;
END
$$;
COMMENT ON FUNCTION memory_system._as_of(text) IS
'An as_of given as text, as a timestamptz (NULL stays NULL): raises NX039 for text that is not a
timestamp. For the doors that take as_of as text (MCP). Internal.';
