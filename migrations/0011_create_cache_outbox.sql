-- The cache's outbox: which working-memory rows and which agents' recent episodes changed, for the
-- Redis mirror. Notifications on a channel are readable by any role that LISTENs (PostgreSQL has no
-- privilege on LISTEN), so they carry nothing: `NOTIFY nexus_cache` only wakes the mirror, which
-- drains this table through a SECURITY DEFINER function that only nexus_worker may execute.
-- Rows are added in the writer's transaction (after commit only, like the NOTIFY), only while a
-- mirror leads; a mirror that takes the lead reconciles, which covers anything written before.

CREATE TABLE memory_system.cache_outbox (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- u: working-memory row upserted, d: working-memory row deleted, r: recent episodes changed
    op        text NOT NULL CHECK (op IN ('u', 'd', 'r')),
    row_id    bigint,
    agent_id  text,
    CHECK ((op IN ('u', 'd') AND row_id IS NOT NULL) OR (op = 'r' AND agent_id IS NOT NULL))
);
COMMENT ON TABLE memory_system.cache_outbox IS
    'Changes waiting for the Redis mirror (drained by memory_system.cache_outbox_drain). No role but '
    'the owner reads it: channel payloads used to carry these ids and agent names.';

REVOKE ALL ON memory_system.cache_outbox FROM PUBLIC;
ALTER TABLE memory_system.cache_outbox ENABLE ROW LEVEL SECURITY;
