-- Store search filters, as LangGraph defines them: {"key": value} (equality) or
-- {"key": {"$op": operand, ...}} with $eq $ne $gt $gte $lt $lte, on the value's top-level keys.
-- A key the item lacks reads as JSON null. $gt/$gte/$lt/$lte compare numbers as numbers and strings
-- as strings (code-point order); a value of another type than the operand never matches.
-- A filter is checked once (nexus._store_filter), then matched per item (nexus._store_match).

CREATE OR REPLACE FUNCTION nexus._store_filter(p_filter jsonb,
                                               OUT keys text[], OUT ops text[], OUT operands jsonb[])
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    f record;
    o record;
BEGIN
    keys := '{}'; ops := '{}'; operands := '{}';
    IF p_filter IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_filter) <> 'object' THEN
        RAISE EXCEPTION 'filter must be a JSON object, got %', jsonb_typeof(p_filter) USING ERRCODE = 'NX061';
    END IF;
    FOR f IN SELECT * FROM jsonb_each(p_filter) LOOP
        IF jsonb_typeof(f.value) = 'object'
           AND EXISTS (SELECT FROM jsonb_object_keys(f.value) AS k WHERE left(k, 1) = '$') THEN
            FOR o IN SELECT * FROM jsonb_each(f.value) LOOP
                IF o.key NOT IN ('$eq', '$ne', '$gt', '$gte', '$lt', '$lte') THEN
                    RAISE EXCEPTION 'unknown filter operator % on key %', quote_literal(o.key), quote_literal(f.key)
                        USING ERRCODE = 'NX061', HINT = 'Operators: $eq $ne $gt $gte $lt $lte.';
                END IF;
                IF o.key NOT IN ('$eq', '$ne') AND jsonb_typeof(o.value) NOT IN ('number', 'string') THEN
                    RAISE EXCEPTION '% on key % needs a number or a string, got %', o.key, quote_literal(f.key),
                        jsonb_typeof(o.value) USING ERRCODE = 'NX061';
                END IF;
                keys := keys || f.key; ops := ops || o.key; operands := operands || o.value;
            END LOOP;
        ELSE
            keys := keys || f.key; ops := ops || '$eq'::text; operands := operands || f.value;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION nexus._store_filter(jsonb) IS
'Internal: checks a store search filter and returns it as (key, operator, operand) triples.
Errors: NX061 not an object, an unknown operator (anything but $eq $ne $gt $gte $lt $lte), or a
range operator on something else than a number or a string.';


CREATE OR REPLACE FUNCTION nexus._store_compare(p_a jsonb, p_b jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(p_a) = 'number' AND jsonb_typeof(p_b) = 'number'
            THEN sign(p_a::numeric - p_b::numeric)::integer
        WHEN jsonb_typeof(p_a) = 'string' AND jsonb_typeof(p_b) = 'string' THEN
            CASE WHEN (p_a #>> '{}') COLLATE "C" < (p_b #>> '{}') COLLATE "C" THEN -1
                 WHEN (p_a #>> '{}') = (p_b #>> '{}') THEN 0
                 ELSE 1 END
    END
$$;
COMMENT ON FUNCTION nexus._store_compare(jsonb, jsonb) IS
'Internal: -1, 0 or 1 comparing two JSON numbers (as numbers) or two JSON strings (in code-point
order); NULL for any other pair.';


CREATE OR REPLACE FUNCTION nexus._store_match(p_value jsonb, p_keys text[], p_ops text[], p_operands jsonb[])
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(bool_and(CASE c.op
               WHEN '$eq' THEN coalesce(p_value -> c.k, 'null') = c.v
               WHEN '$ne' THEN coalesce(p_value -> c.k, 'null') <> c.v
               WHEN '$gt' THEN nexus._store_compare(p_value -> c.k, c.v) > 0
               WHEN '$gte' THEN nexus._store_compare(p_value -> c.k, c.v) >= 0
               WHEN '$lt' THEN nexus._store_compare(p_value -> c.k, c.v) < 0
               WHEN '$lte' THEN nexus._store_compare(p_value -> c.k, c.v) <= 0
           END IS TRUE), true)
      FROM unnest(p_keys, p_ops, p_operands) AS c(k, op, v)
$$;
COMMENT ON FUNCTION nexus._store_match(jsonb, text[], text[], jsonb[]) IS
'Internal: whether a store item''s value passes every (key, operator, operand) of a checked filter.';
