-- Bearer tokens of agents (migration 0012, db/functions/agents/tokens.sql): only a SHA-256 is
-- stored; memory_system.token_agent maps a live token to its agent, for nexus_app alone, and
-- refuses unknown, expired and revoked ones.
BEGIN;
SELECT plan(31);
SET LOCAL client_min_messages = warning;

SELECT tests.create_agent('alice');
SELECT tests.create_agent('bob');
SELECT memory_system.agent_add('hermit', NULL, '', NULL);  -- nexus_app may not act as it

CREATE TEMP TABLE issued (name text PRIMARY KEY, token_id bigint);
GRANT ALL ON issued TO PUBLIC;
INSERT INTO issued
SELECT 'a1', (memory_system.token_issue('alice', sha256('token-a1'::bytea), NULL, 'laptop')).token_id;
INSERT INTO issued
SELECT 'a2', (memory_system.token_issue('alice', sha256('token-a2'::bytea), '1 hour')).token_id;
INSERT INTO issued
SELECT 'b1', (memory_system.token_issue('bob', sha256('token-b1'::bytea), '30 days')).token_id;

-- what is stored ---------------------------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM memory_system.agent_tokens), 3, 'three tokens stored');
SELECT is((SELECT token_sha256 FROM memory_system.agent_tokens
            WHERE token_id = (SELECT token_id FROM issued WHERE name = 'a1')),
          sha256('token-a1'::bytea), 'the SHA-256 of the token is stored');
SELECT is_empty($$SELECT FROM memory_system.agent_tokens AS t
                   WHERE position('token-' IN t::text) > 0$$,
                'no column holds the token itself');
SELECT ok((SELECT expires_at IS NULL FROM memory_system.agent_tokens
            WHERE token_id = (SELECT token_id FROM issued WHERE name = 'a1')),
          'no ttl: the token does not expire');
SELECT ok((SELECT expires_at = now() + interval '30 days' FROM memory_system.agent_tokens
            WHERE token_id = (SELECT token_id FROM issued WHERE name = 'b1')),
          'a ttl sets the expiry');

-- bad input --------------------------------------------------------------------------------------
SELECT throws_ok($$SELECT memory_system.token_issue('nobody', sha256('x'::bytea))$$, 'NX002', NULL,
                 'a token of an unknown agent is refused');
SELECT throws_ok($$SELECT memory_system.token_issue('alice', '\x0102'::bytea)$$, 'NX006', NULL,
                 'a hash that is not 32 bytes is refused');
SELECT throws_ok($$SELECT memory_system.token_issue('alice', sha256('y'::bytea), '-1 day')$$,
                 'NX006', NULL, 'a ttl that is not positive is refused');
SELECT throws_ok($$SELECT memory_system.token_issue('alice', sha256('y'::bytea), NULL, repeat('l', 201))$$,
                 'NX006', NULL, 'a label over 200 characters is refused');
SELECT throws_ok($$SELECT memory_system.token_issue('hermit', sha256('y'::bytea))$$, 'NX006', NULL,
                 'a token for an agent nexus_app may not act as is refused');
SELECT throws_ok($$SELECT memory_system.token_issue('bob', sha256('token-a1'::bytea))$$, '23505', NULL,
                 'the same token twice is refused');

-- mapping a token to its agent, as nexus_app -----------------------------------------------------
SET LOCAL ROLE nexus_app;
SELECT is(memory_system.token_agent(sha256('token-a1'::bytea)), 'alice', 'a token of alice maps to alice');
SELECT is(memory_system.token_agent(sha256('token-a2'::bytea)), 'alice', 'her second token too');
SELECT is(memory_system.token_agent(sha256('token-b1'::bytea)), 'bob', 'a token of bob maps to bob');
SELECT is(memory_system.token_agent(sha256('token-zz'::bytea)), NULL, 'an unknown token maps to nobody');
SELECT is(memory_system.token_agent(NULL), NULL, 'no token maps to nobody');
SELECT throws_ok($$SELECT * FROM memory_system.agent_tokens$$, '42501', NULL,
                 'nexus_app cannot read the tokens table');
SELECT throws_ok($$SELECT memory_system.token_issue('alice', sha256('q'::bytea))$$, '42501', NULL,
                 'nexus_app cannot issue tokens');
RESET ROLE;

-- expiry and revocation ------------------------------------------------------------------------
UPDATE memory_system.agent_tokens SET expires_at = now() - interval '1 second'
 WHERE token_id = (SELECT token_id FROM issued WHERE name = 'a2');
SELECT is(memory_system.token_revoke((SELECT token_id FROM issued WHERE name = 'b1')), true,
          'revoking a live token says so');
SELECT is(memory_system.token_revoke((SELECT token_id FROM issued WHERE name = 'b1')), false,
          'revoking it again changes nothing');
SELECT throws_ok($$SELECT memory_system.token_revoke(-1)$$, 'NX007', NULL, 'an unknown token id is refused');
SET LOCAL ROLE nexus_app;
SELECT is(memory_system.token_agent(sha256('token-a2'::bytea)), NULL, 'an expired token maps to nobody');
SELECT is(memory_system.token_agent(sha256('token-b1'::bytea)), NULL, 'a revoked token maps to nobody');
SELECT is(memory_system.token_agent(sha256('token-a1'::bytea)), 'alice', 'a live token still maps');
RESET ROLE;
SELECT results_eq($$SELECT label, state FROM memory_system.token_list('alice')$$,
                  $$VALUES ('laptop', 'active'), ('', 'expired')$$,
                  'token_list: labels and states, never hashes');
SELECT throws_ok($$SELECT * FROM memory_system.token_list('nobody')$$, 'NX002', NULL,
                 'token_list of an unknown agent is refused');

-- nobody else maps tokens --------------------------------------------------------------------------
SET LOCAL ROLE alice;
SELECT throws_ok($$SELECT memory_system.token_agent(sha256('token-b1'::bytea))$$, '42501', NULL,
                 'an agent cannot map tokens');
RESET ROLE;
SET LOCAL ROLE nexus_ro;
SELECT throws_ok($$SELECT memory_system.token_agent(sha256('token-a1'::bytea))$$, '42501', NULL,
                 'an analyst cannot map tokens');
SELECT throws_ok($$SELECT token_sha256 FROM memory_system.agent_tokens$$, '42501', NULL,
                 'an analyst cannot read the hashes');
RESET ROLE;

-- a removed agent takes its tokens with it -----------------------------------------------------
SELECT memory_system.agent_remove('bob');
SELECT is((SELECT count(*)::int FROM memory_system.agent_tokens WHERE agent_id = 'bob'), 0,
          'removing an agent removes its tokens');
SELECT ok((SELECT prosecdef AND proconfig @> ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_catalog.pg_proc WHERE oid = 'memory_system.token_agent(bytea)'::regprocedure),
          'token_agent is SECURITY DEFINER with a fixed search_path');

SELECT * FROM finish();
ROLLBACK;
