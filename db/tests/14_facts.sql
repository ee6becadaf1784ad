-- Facts that change (docs/facts.md): valid time, keyed chains, supersession, invalidation, a fact
-- learned late splitting a history, as-of at every boundary, history, deduplication by normalised
-- text, bad input with its SQLSTATE (and nothing changed), the constraints behind the functions, and
-- isolation around every fact function. Two sessions writing one key: tests/test_facts.py.
BEGIN;
SELECT plan(128);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
GRANT ALL ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT id FROM ids WHERE name = p_name $$;
-- times of the histories below: T(n) is n days into 2024
CREATE FUNCTION pg_temp.t(p_day float8) RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT timestamptz '2024-01-01 00:00+00' + p_day * interval '1 day' $$;
-- a key's history as (name, valid_from day, valid_to day, ended_by, superseded_by name)
CREATE FUNCTION pg_temp.chain(p_key text) RETURNS TABLE (content text, from_day float8, to_day float8,
                                                          ended_by text, successor text)
LANGUAGE sql AS $$
    SELECT h.content, (extract(epoch FROM h.valid_from - pg_temp.t(0)) / 86400)::float8,
           (extract(epoch FROM h.valid_to - pg_temp.t(0)) / 86400)::float8, h.ended_by,
           (SELECT s.content FROM nexus_memory.semantic_memories AS s WHERE s.id = h.superseded_by)
      FROM nexus.fact_history(key => p_key) AS h
$$;
-- the content of the fact of a key that holds at a time (NULL: none)
CREATE FUNCTION pg_temp.at(p_key text, p_at timestamptz) RETURNS text LANGUAGE sql
AS $$ SELECT string_agg(content, ' + ') FROM nexus.get_fact(key => p_key, as_of => p_at) $$;
-- the error a statement raises: code, message (numbers as N), detail, hint; NULL if none
CREATE FUNCTION pg_temp.error_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text; v_detail text; v_hint text;
BEGIN
    EXECUTE p_sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', v_state, regexp_replace(v_msg, '[0-9]+', 'N'), v_detail, v_hint);
END $$;
-- every fact of every agent, to prove a refused call changed nothing
CREATE TEMP VIEW all_facts AS SELECT to_jsonb(s) AS row FROM nexus_memory.semantic_memories AS s;
CREATE TEMP TABLE snapshot (row jsonb);
GRANT SELECT ON all_facts TO PUBLIC;
GRANT ALL ON snapshot TO PUBLIC;

-- the schema --------------------------------------------------------------------------------------
SELECT has_extension('btree_gist', 'btree_gist is installed (the exclusion constraint needs it)');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conname = 'semantic_memories_one_fact_per_key'),
          'EXCLUDE USING gist (agent_id WITH =, fact_key WITH =, tstzrange(valid_from, valid_to, ''[)''::text) WITH &&) WHERE ((fact_key IS NOT NULL))',
          'one fact per (agent, key) at any instant is an exclusion constraint over the valid time');
SELECT fk_ok('nexus_memory', 'semantic_memories', ARRAY['agent_id', 'superseded_by'],
             'nexus_memory', 'semantic_memories', ARRAY['agent_id', 'id'],
             'a fact is superseded by a fact of the same agent');
SELECT col_default_is('nexus_memory', 'semantic_memories', 'valid_from', 'now()', 'a fact holds from when it is written');
SELECT col_not_null('nexus_memory', 'semantic_memories', 'valid_from', 'every fact has a valid_from');
SELECT is((SELECT attgenerated FROM pg_attribute WHERE attrelid = 'nexus_memory.semantic_memories'::regclass
            AND attname = 'content_norm_sha256'), 's', 'the normalised checksum is computed by the database');
-- every parameter of a fact function is described in its COMMENT's MCP section
SELECT ok(obj_description(p.oid, 'pg_proc') ~ ('(^|\n)MCP: ') AND
          NOT EXISTS (SELECT FROM unnest(p.proargnames[1:p.pronargs]) AS a
                       WHERE obj_description(p.oid, 'pg_proc') !~ ('\n- ' || a || ': ')),
          format('%s describes itself and each parameter for MCP', p.oid::regprocedure))
  FROM pg_proc AS p
 WHERE p.pronamespace = 'nexus'::regnamespace
   AND p.proname IN ('remember_fact', 'get_fact', 'invalidate_fact', 'fact_history')
 ORDER BY p.proname;
SELECT is(p.prosecdef, false, format('%s is SECURITY INVOKER', p.oid::regprocedure))
  FROM pg_proc AS p
 WHERE p.oid IN ('nexus.remember_fact(text,jsonb,text[],real,bigint,text,bigint,timestamptz,text)'::regprocedure,
                 'nexus.get_fact(bigint,text,timestamptz,boolean,text)'::regprocedure,
                 'nexus.invalidate_fact(bigint,timestamptz)'::regprocedure,
                 'nexus.fact_history(bigint,text,text)'::regprocedure)
 ORDER BY p.oid::regprocedure::text;

-- deduplication by normalised text ----------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO ids VALUES ('tea', nexus.remember_fact('Likes green tea', tags => '{drinks}'));
SELECT is(nexus.remember_fact(c, tags => '{again}'), pg_temp.id('tea'),
          format('%s is the same unkeyed fact', translate(quote_literal(c), E'\t\n', '  ')))
  FROM unnest(ARRAY['likes green tea', '  LIKES   green' || E'\t\n' || 'tea. ', '"Likes green tea!"',
                    '...likes green tea?']) AS c;
SELECT is((SELECT tags FROM nexus.get_fact(pg_temp.id('tea'))), '{again,drinks}', 'metadata and tags merge into it');
SELECT isnt(nexus.remember_fact(c), pg_temp.id('tea'), format('%L is another fact', c))
  FROM unnest(ARRAY['Likes green-tea', 'Likes green teas', 'Dislikes green tea']) AS c;
SELECT isnt(nexus.remember_fact('?!'), nexus.remember_fact('...'),
            'text that is only punctuation is compared as it is');
SELECT is(nexus.remember_fact('?!'), nexus.remember_fact('?!'), 'and is deduplicated as it is');
RESET ROLE;
SELECT is((SELECT count(*) FROM nexus_memory.semantic_memories
            WHERE content_norm_sha256 IS DISTINCT FROM memory_system._fact_text_sha256(content)), 0::bigint,
          'the generated checksum and memory_system._fact_text_sha256 normalise alike');
SELECT is(memory_system._fact_text_sha256(E' A\\b  C. '), memory_system._fact_text_sha256(E'a\\b c'),
          'backslashes are text, not escapes');

-- a keyed chain -----------------------------------------------------------------------------------
SET LOCAL ROLE alice;
INSERT INTO ids VALUES ('austin', nexus.remember_fact('Lives in Austin', key => 'user.city', valid_from => pg_temp.t(10)));
INSERT INTO ids VALUES ('denver', nexus.remember_fact('Lives in Denver', key => 'user.city', valid_from => pg_temp.t(20)));
SELECT results_eq($$SELECT * FROM pg_temp.chain('user.city')$$,
    $$VALUES ('Lives in Austin', 10::float8, 20::float8, 'superseded', 'Lives in Denver'),
             ('Lives in Denver', 20, NULL, NULL, NULL)$$,
    'a keyed fact ends the fact of its key where it begins');
SELECT results_eq($$SELECT id, is_current FROM nexus.get_fact(key => 'user.city')$$,
                  $$VALUES (pg_temp.id('denver'), true)$$, 'get_fact by key: the fact true now');
SELECT is_empty(format('SELECT * FROM nexus.get_fact(%s)', pg_temp.id('austin')),
                'get_fact of a superseded fact by id: no row, it does not hold now');
SELECT results_eq(format('SELECT content, valid_to, superseded_by, is_current FROM nexus.get_fact(%s, include_history => true)', pg_temp.id('austin')),
                  format($$VALUES ('Lives in Austin', %L::timestamptz, %s::bigint, false)$$, pg_temp.t(20), pg_temp.id('denver')),
                  'with include_history: the fact, its end and what replaced it');
SELECT is(pg_temp.at('user.city', a), c, format('as of %s: %s', d, coalesce(c, 'nothing')))
  FROM (VALUES (pg_temp.t(10) - interval '1 microsecond', NULL, 'just before the first valid_from'),
               (pg_temp.t(10), 'Lives in Austin', 'exactly at valid_from'),
               (pg_temp.t(20) - interval '1 microsecond', 'Lives in Austin', 'just before valid_to'),
               (pg_temp.t(20), 'Lives in Denver', 'exactly at valid_to: the next fact'),
               ('infinity', 'Lives in Denver', 'infinity')) AS v (a, c, d);
SELECT results_eq(format('SELECT content FROM nexus.get_fact(%s, as_of => %L)', pg_temp.id('austin'), pg_temp.t(15)),
                  $$VALUES ('Lives in Austin')$$, 'get_fact by id as of a time it held');
SELECT results_eq($$SELECT content FROM nexus.get_fact(key => 'user.city', include_history => true)$$,
                  $$VALUES ('Lives in Austin'), ('Lives in Denver')$$, 'include_history by key: every fact, oldest first');
SELECT results_eq(format('SELECT id FROM nexus.fact_history(%s)', pg_temp.id('austin')),
                  $$SELECT id FROM nexus.fact_history(key => 'user.city')$$, 'fact_history by id of a keyed fact: its key''s history');
SELECT is_empty($$SELECT * FROM nexus.fact_history(key => 'user.unknown')$$, 'an unknown key has no history');
SELECT is_empty($$SELECT * FROM nexus.get_fact(key => 'user.unknown')$$, 'nor a fact');

-- the same value again: the fact that holds, its validity unchanged
SELECT is(nexus.remember_fact('lives in denver.', key => 'user.city', importance => 0.9), pg_temp.id('denver'),
          'restating the fact that holds returns it');
SELECT results_eq($$SELECT content, valid_from, importance FROM nexus.get_fact(key => 'user.city')$$,
                  format($$VALUES ('Lives in Denver', %L::timestamptz, 0.9::real)$$, pg_temp.t(20)),
                  'its validity stays, the higher importance is kept');

-- learned late: into the middle, before the first, and where the next fact says the same
INSERT INTO ids VALUES ('chicago', nexus.remember_fact('Lives in Chicago', key => 'user.city', valid_from => pg_temp.t(15)));
SELECT results_eq($$SELECT * FROM pg_temp.chain('user.city')$$,
    $$VALUES ('Lives in Austin', 10::float8, 15::float8, 'superseded', 'Lives in Chicago'),
             ('Lives in Chicago', 15, 20, 'superseded', 'Lives in Denver'),
             ('Lives in Denver', 20, NULL, NULL, NULL)$$,
    'a fact learned late splits the history: it holds until what followed');
INSERT INTO ids VALUES ('boston', nexus.remember_fact('Lives in Boston', key => 'user.city', valid_from => pg_temp.t(5)));
SELECT results_eq($$SELECT content, from_day, to_day, successor FROM pg_temp.chain('user.city') LIMIT 2$$,
    $$VALUES ('Lives in Boston', 5::float8, 10::float8, 'Lives in Austin'),
             ('Lives in Austin', 10, 15, 'Lives in Chicago')$$,
    'before the first fact: it holds until the first');
SELECT is(nexus.remember_fact('Lives in Denver', key => 'user.city', valid_from => pg_temp.t(18)), pg_temp.id('denver'),
          'the same value as the next fact, from earlier: that fact');
SELECT results_eq($$SELECT * FROM pg_temp.chain('user.city')$$,
    $$VALUES ('Lives in Boston', 5::float8, 10::float8, 'superseded', 'Lives in Austin'),
             ('Lives in Austin', 10, 15, 'superseded', 'Lives in Chicago'),
             ('Lives in Chicago', 15, 18, 'superseded', 'Lives in Denver'),
             ('Lives in Denver', 18, NULL, NULL, NULL)$$,
    'which now begins earlier');
SELECT is(nexus.remember_fact('Lives in Chicago', key => 'user.city', valid_from => pg_temp.t(16)), pg_temp.id('chicago'),
          'restating a past fact at a time it held: that fact, unchanged');

-- invalidation, a gap, a value that comes back
SELECT is(nexus.invalidate_fact(pg_temp.id('denver'), at => pg_temp.t(30)), pg_temp.t(30), 'invalidate_fact returns when it ends');
SELECT is_empty($$SELECT * FROM nexus.get_fact(key => 'user.city')$$, 'after an invalidation nothing holds');
SELECT is(pg_temp.at('user.city', pg_temp.t(30) - interval '1 microsecond'), 'Lives in Denver', 'until then it held');
INSERT INTO ids VALUES ('austin2', nexus.remember_fact('Lives in Austin', key => 'user.city'));
SELECT isnt(pg_temp.id('austin2'), pg_temp.id('austin'), 'a value that comes back is a new fact');
INSERT INTO ids VALUES ('seattle', nexus.remember_fact('Lives in Seattle', key => 'user.city', valid_from => pg_temp.t(40)));
SELECT results_eq($$SELECT content, from_day, ended_by, successor FROM pg_temp.chain('user.city') OFFSET 3$$,
    $$VALUES ('Lives in Denver', 18::float8, 'invalidated', NULL),
             ('Lives in Seattle', 40, 'superseded', 'Lives in Austin'),
             ('Lives in Austin', (extract(epoch FROM now() - pg_temp.t(0)) / 86400)::float8, NULL, NULL)$$,
    'into a gap after an invalidation: it holds until the next fact');
SELECT is(pg_temp.at('user.city', pg_temp.t(35)), NULL, 'the gap stays a gap');
SELECT results_eq($$SELECT content FROM nexus.get_fact(key => 'user.city')$$, $$VALUES ('Lives in Austin')$$,
                  'the fact written now holds now');

-- into a fact that was invalidated: the new one takes over its end
INSERT INTO ids VALUES ('acme', nexus.remember_fact('Works at Acme', key => 'user.job', valid_from => pg_temp.t(10)));
SELECT is(nexus.invalidate_fact(pg_temp.id('acme'), at => pg_temp.t(30)), pg_temp.t(30), 'a job that ended');
INSERT INTO ids VALUES ('beta', nexus.remember_fact('Works at Beta', key => 'user.job', valid_from => pg_temp.t(20)));
SELECT results_eq($$SELECT * FROM pg_temp.chain('user.job')$$,
    $$VALUES ('Works at Acme', 10::float8, 20::float8, 'superseded', 'Works at Beta'),
             ('Works at Beta', 20, 30, 'invalidated', NULL)$$,
    'a fact learned late inside an invalidated one: that fact ends, the new one ends as it did');

-- a fact that never held: invalidated as it began, or replaced as it began
INSERT INTO ids VALUES ('v1', nexus.remember_fact('Vegetarian', key => 'user.diet', valid_from => pg_temp.t(10)));
INSERT INTO ids VALUES ('v2', nexus.remember_fact('Vegan', key => 'user.diet', valid_from => pg_temp.t(10)));
SELECT results_eq($$SELECT * FROM pg_temp.chain('user.diet')$$,
    $$VALUES ('Vegetarian', 10::float8, 10::float8, 'superseded', 'Vegan'),
             ('Vegan', 10, NULL, NULL, NULL)$$,
    'replaced as it began: an empty validity, listed before what replaced it');
SELECT is(pg_temp.at('user.diet', pg_temp.t(10)), 'Vegan', 'it never holds');
SELECT is(nexus.invalidate_fact(pg_temp.id('v2'), at => pg_temp.t(10)), pg_temp.t(10), 'invalidated at its valid_from');
SELECT is_empty($$SELECT * FROM nexus.get_fact(key => 'user.diet', as_of => pg_temp.t(10))$$, 'then it never held either');

-- supersedes: explicit, for facts without a key ----------------------------------------------------
INSERT INTO ids VALUES ('coffee', nexus.remember_fact('Likes coffee', supersedes => pg_temp.id('tea'), valid_from => now() + interval '1 day'));
SELECT results_eq(format('SELECT valid_to, ended_by, superseded_by FROM nexus.get_fact(%s, include_history => true)', pg_temp.id('tea')),
                  $$VALUES (now() + interval '1 day', 'superseded', pg_temp.id('coffee'))$$,
                  'supersedes ends that fact where the new one begins');
SELECT results_eq(format('SELECT id FROM nexus.get_fact(%s)', pg_temp.id('tea')), format('VALUES (%s::bigint)', pg_temp.id('tea')),
                  'a fact superseded from tomorrow on still holds today');
SELECT is_empty(format('SELECT * FROM nexus.get_fact(%s)', pg_temp.id('coffee')), 'and its successor does not yet');
SELECT results_eq(format('SELECT id FROM nexus.fact_history(%s)', f), format('VALUES (%s::bigint), (%s)', pg_temp.id('tea'), pg_temp.id('coffee')),
                  format('fact_history of an unkeyed fact, from its %s: the chain', e))
  FROM (VALUES (pg_temp.id('tea'), 'first'), (pg_temp.id('coffee'), 'last')) AS v (f, e);
INSERT INTO ids VALUES ('juice', nexus.remember_fact('Likes juice', supersedes => pg_temp.id('coffee'), valid_from => now() + interval '2 days'));
SELECT results_eq(format('SELECT content FROM nexus.fact_history(%s)', pg_temp.id('coffee')),
                  $$VALUES ('Likes green tea'), ('Likes coffee'), ('Likes juice')$$, 'a chain of three, oldest first');
SELECT is(nexus.remember_fact('likes JUICE', supersedes => pg_temp.id('juice'), valid_from => now() + interval '3 days'), pg_temp.id('juice'),
          'superseding a fact with its own text: that fact');
INSERT INTO ids VALUES ('reno', nexus.remember_fact('Lives in Reno', supersedes => pg_temp.id('austin2')));
SELECT is((SELECT fact_key FROM nexus.get_fact(pg_temp.id('reno'))), 'user.city',
          'superseding a keyed fact: the new fact takes its key');
SELECT results_eq($$SELECT content FROM nexus.get_fact(key => 'user.city')$$, $$VALUES ('Lives in Reno')$$,
                  'and holds for it now');

-- bad input: its own code, nothing changed ---------------------------------------------------------
RESET ROLE;
INSERT INTO snapshot SELECT row FROM all_facts;
SET LOCAL ROLE alice;
SELECT throws_ok(s, c, NULL, d)
  FROM (VALUES
    (format('SELECT nexus.invalidate_fact(%s, at => %L)', pg_temp.id('austin2'), pg_temp.t(1)), 'NX038', 'invalidate_fact of a superseded fact'),
    (format('SELECT nexus.invalidate_fact(%s, at => %L)', pg_temp.id('seattle'), pg_temp.t(1)), 'NX038', 'invalidate_fact of a fact that ended'),
    (format('SELECT nexus.invalidate_fact(%s, at => %L)', pg_temp.id('beta'), pg_temp.t(25)), 'NX038', 'invalidate_fact of an invalidated fact'),
    (format('SELECT nexus.invalidate_fact(%s, at => %L)', pg_temp.id('juice'), pg_temp.t(1)), 'NX037', 'invalidate_fact before the fact began (valid_to before valid_from)'),
    ('SELECT nexus.invalidate_fact(-1)', 'NX033', 'invalidate_fact of an id that does not exist'),
    (format('SELECT nexus.remember_fact(%L, supersedes => %s)', 'x', pg_temp.id('austin')), 'NX038', 'superseding a fact already superseded'),
    (format('SELECT nexus.remember_fact(%L, supersedes => %s)', 'x', pg_temp.id('beta')), 'NX038', 'superseding a fact already invalidated'),
    (format('SELECT nexus.remember_fact(%L, supersedes => %s, valid_from => %L)', 'x', pg_temp.id('juice'), now()), 'NX037', 'superseding from before the fact began'),
    (format('SELECT nexus.remember_fact(%L, supersedes => %s, key => %L, valid_from => %L)', 'x', pg_temp.id('juice'), 'user.drink', now() + interval '3 days'), 'NX031', 'superseding an unkeyed fact with a key'),
    ('SELECT nexus.remember_fact(''x'', supersedes => -1)', 'NX033', 'superseding a fact that does not exist'),
    ('SELECT nexus.remember_fact(''x'', key => '''')', 'NX036', 'an empty key'),
    ('SELECT nexus.remember_fact(''x'', key => repeat(''k'', 257))', 'NX036', 'a key over 256 characters'),
    ('SELECT nexus.remember_fact(''x'', key => '' user.city'')', 'NX036', 'a key with leading whitespace'),
    ('SELECT nexus.remember_fact(''x'', key => E''user.city\n'')', 'NX036', 'a key with trailing whitespace'),
    ('SELECT nexus.remember_fact(''   '', key => ''user.city'')', 'NX031', 'a keyed fact without content'),
    ('SELECT nexus.remember_fact(''x'', key => ''user.city'', importance => NULL)', 'NX015', 'a keyed fact with a NULL importance'),
    ('SELECT * FROM nexus.get_fact(key => '''')', 'NX036', 'get_fact of an empty key'),
    ('SELECT * FROM nexus.fact_history(key => repeat(''k'', 257))', 'NX036', 'fact_history of a key over 256 characters'),
    ('SELECT * FROM nexus.get_fact()', 'NX031', 'get_fact of nothing'),
    ('SELECT * FROM nexus.get_fact(1, key => ''user.city'')', 'NX031', 'get_fact of an id and a key'),
    ('SELECT * FROM nexus.get_fact(key => ''user.city'', as_of => now(), include_history => true)', 'NX031', 'get_fact with as_of and include_history'),
    ('SELECT * FROM nexus.fact_history()', 'NX031', 'fact_history of nothing'),
    ('SELECT * FROM nexus.fact_history(-1)', 'NX033', 'fact_history of an id that does not exist'),
    ('SELECT memory_system._as_of(''last tuesday'')', 'NX039', 'an as_of that is not a timestamp'),
    ('SELECT memory_system._as_of(''2024-13-45'')', 'NX039', 'an as_of that is no date')
  ) AS v (s, c, d);
SELECT is(memory_system._as_of('2024-03-01T12:00:00Z'), timestamptz '2024-03-01 12:00+00', 'an as_of in ISO 8601 is a timestamp');
SELECT is(memory_system._as_of(NULL), NULL, 'no as_of is none');
INSERT INTO ids VALUES ('long', nexus.remember_fact('long key', key => repeat('k', 256)));
SELECT is((SELECT length(fact_key) FROM nexus.get_fact(pg_temp.id('long'))), 256, 'a key of 256 characters is fine');
DELETE FROM nexus_memory.semantic_memories WHERE content = 'long key';
RESET ROLE;
SELECT set_eq('SELECT row FROM all_facts', 'SELECT row FROM snapshot', 'the refused calls changed nothing');

-- the constraints behind the functions (direct DML by the agent) -----------------------------------
SET LOCAL ROLE alice;
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, fact_key) VALUES ('Lives in Paris', 'user.city')$$,
                 '23P01', NULL, 'a second fact holding for a key at once: the exclusion constraint');
SELECT throws_ok(format($$UPDATE nexus_memory.semantic_memories SET valid_to = NULL, ended_by = NULL, ended_at = NULL, superseded_by = NULL WHERE id = %s$$, pg_temp.id('austin')),
                 '23P01', NULL, 'reopening an ended fact of a key that holds again: refused');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, fact_key, valid_from) VALUES ('x', 'user.other', now() - interval '1 day'),
                                                                                        ('y', 'user.other', now())$$,
                 '23P01', NULL, 'two open facts of one key in one statement');
SELECT lives_ok($$INSERT INTO nexus_memory.semantic_memories (content, fact_key, valid_from, valid_to, ended_by, ended_at)
                  VALUES ('x', 'user.other', now() - interval '2 days', now() - interval '1 day', 'invalidated', now()),
                         ('y', 'user.other', now() - interval '1 day', NULL, NULL, NULL)$$,
                'one after the other they fit');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, valid_from, valid_to, ended_by, ended_at) VALUES ('x', now(), now() - interval '1 second', 'invalidated', now())$$,
                 'NX037', NULL, 'valid_to before valid_from, written directly');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, fact_key) VALUES ('x', '')$$,
                 'NX036', NULL, 'an empty key, written directly');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, valid_to) VALUES ('x', now())$$,
                 '23514', NULL, 'an end without a reason');
SELECT throws_ok($$INSERT INTO nexus_memory.semantic_memories (content, valid_to, ended_by, ended_at) VALUES ('x', now(), 'forgotten', now())$$,
                 '23514', NULL, 'a reason that is not superseded or invalidated');
SELECT throws_ok(format($$INSERT INTO nexus_memory.semantic_memories (content, valid_to, ended_by, ended_at, superseded_by) VALUES ('x', now(), 'invalidated', now(), %s)$$, pg_temp.id('juice')),
                 '23514', NULL, 'an invalidated fact superseded by another');
SELECT throws_ok($$UPDATE nexus_memory.semantic_memories SET fact_key = 'other' WHERE fact_key = 'user.city'$$,
                 '42501', NULL, 'a fact''s key never changes');

-- a deleted successor: its predecessor stays ended
SELECT ok(nexus.delete_fact(pg_temp.id('chicago')), 'delete_fact of a fact in the middle of a history');
SELECT results_eq(format('SELECT valid_to, ended_by, superseded_by FROM nexus.get_fact(%s, include_history => true)', pg_temp.id('austin')),
                  format($$VALUES (%L::timestamptz, 'superseded', NULL::bigint)$$, pg_temp.t(15)),
                  'what it replaced stays ended, superseded by a fact that is gone');
SELECT is(pg_temp.at('user.city', pg_temp.t(16)), NULL, 'its time is a gap');
RESET ROLE;

-- isolation: bob and alice's facts -----------------------------------------------------------------
DELETE FROM snapshot;
INSERT INTO snapshot SELECT row FROM all_facts;
SET LOCAL ROLE bob;
SELECT throws_ok(s, 'NX033', NULL, 'bob: ' || d)
  FROM (VALUES
    (format('SELECT * FROM nexus.get_fact(%s)', pg_temp.id('denver')), 'get_fact of alice''s fact'),
    (format('SELECT * FROM nexus.get_fact(%s, include_history => true)', pg_temp.id('austin')), 'get_fact with history of alice''s fact'),
    (format('SELECT * FROM nexus.fact_history(%s)', pg_temp.id('austin')), 'fact_history of alice''s fact'),
    (format('SELECT nexus.invalidate_fact(%s)', pg_temp.id('austin2')), 'invalidate_fact of alice''s fact'),
    (format('SELECT nexus.remember_fact(''pwned'', supersedes => %s)', pg_temp.id('juice')), 'superseding alice''s fact')
  ) AS v (s, d);
-- "not found" exactly as an id that does not exist: same code, same message but for the number
SELECT is(pg_temp.error_of(format('SELECT nexus.remember_fact(''x'', supersedes => %s)', pg_temp.id('juice'))),
          pg_temp.error_of('SELECT nexus.remember_fact(''x'', supersedes => 999999999)'),
          'bob: superseding alice''s fact looks exactly like superseding a missing one');
SELECT is(pg_temp.error_of(format('SELECT nexus.invalidate_fact(%s)', pg_temp.id('austin2'))),
          pg_temp.error_of('SELECT nexus.invalidate_fact(999999999)'),
          'bob: invalidating alice''s fact looks exactly like invalidating a missing one');
SELECT is_empty($$SELECT * FROM nexus.get_fact(key => 'user.city', include_history => true)$$, 'bob: alice''s key has nothing for him');
SELECT is_empty($$SELECT * FROM nexus.fact_history(key => 'user.city')$$, 'bob: nor a history');
SELECT is_empty(format('SELECT * FROM memory_system._fact_rows(%L, ARRAY[%s]::bigint[], NULL, %L)', 'user.city',
                       pg_temp.id('denver'), 'alice'),
                'bob: the internal row reader shows him nothing of alice''s either, even named (row-level security)');
SELECT is(tests.affected(format('UPDATE nexus_memory.semantic_memories SET valid_to = now(), ended_by = ''invalidated'', ended_at = now() WHERE id = %s', pg_temp.id('juice'))),
          0::bigint, 'bob: a direct update of alice''s fact touches nothing');
INSERT INTO ids VALUES ('bob_city', nexus.remember_fact('Lives in Austin', key => 'user.city', valid_from => pg_temp.t(10)));
SELECT results_eq($$SELECT id, content FROM nexus.get_fact(key => 'user.city')$$,
                  $$VALUES (pg_temp.id('bob_city'), 'Lives in Austin')$$, 'bob: the same key is his own');
SELECT is(nexus.remember_fact('Likes green tea'), nexus.remember_fact('likes green tea.'), 'bob: deduplication is his own');
RESET ROLE;
SELECT set_eq($$SELECT row FROM all_facts WHERE row ->> 'agent_id' = 'alice'$$,
              $$SELECT row FROM snapshot WHERE row ->> 'agent_id' = 'alice'$$, 'bob changed none of alice''s facts');
SET LOCAL ROLE alice;
SELECT results_eq($$SELECT content FROM nexus.get_fact(key => 'user.city')$$, $$VALUES ('Lives in Reno')$$,
                  'alice: her key still holds her fact');
RESET ROLE;
SET LOCAL ROLE nexus_ro;
SELECT throws_ok($$SELECT * FROM nexus.fact_history(key => 'user.city')$$, '42501', NULL, 'analysts may not call the fact API');
RESET ROLE;
SELECT throws_ok($$SELECT nexus.invalidate_fact(1)$$, 'NX001', NULL, 'a role that is no agent may not invalidate');

SELECT * FROM finish();
ROLLBACK;
