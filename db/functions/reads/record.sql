-- The read record (docs/privacy.md, "Reads"): off by default; when on for an agent (read_settings)
-- or for all (the setting 'reads'), each read function of the API ends with one call of
-- memory_system._record_read, which appends who read, when, the function, the SHA-256 of the
-- query (its text only if configured) and the ids returned, in order. memory_system.reads is
-- append-only: nobody is granted UPDATE or DELETE, and a trigger refuses them (and TRUNCATE) to
-- the owner too; only whole days past their retention go, by dropping their partition.

CREATE OR REPLACE FUNCTION memory_system._record_read(
    p_function  text,
    p_query     text,
    p_kinds     text[],
    p_ids       bigint[],
    -- evaluated in the caller's context, before this function takes its owner's rights
    p_agent     text DEFAULT current_user)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_on    boolean;
    v_text  boolean;
BEGIN
    SELECT coalesce(a.record, g.value = 'on'), coalesce(a.query_text, t.value = 'on')
      INTO v_on, v_text
      FROM (SELECT) AS one
      LEFT JOIN memory_system.settings AS g ON g.name = 'reads'
      LEFT JOIN memory_system.settings AS t ON t.name = 'reads_query_text'
      LEFT JOIN memory_system.read_settings AS a ON a.agent_id = p_agent;
    IF NOT coalesce(v_on, false) THEN
        RETURN false;
    END IF;
    -- a caller records reads as itself only: the role it logged in as, or one it may act as
    IF p_agent IS DISTINCT FROM session_user::text AND NOT pg_has_role(session_user, p_agent, 'MEMBER') THEN
        RAISE EXCEPTION 'reads are recorded as the calling agent only' USING ERRCODE = 'NX101';
    END IF;
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'the reads of agent % are recorded, which a read-only transaction cannot do', p_agent
            USING ERRCODE = 'NX102',
                  HINT = 'Run this agent''s reads on the primary in a read-write transaction, or turn its read record off (nexus reads off --agent NAME).';
    END IF;
    -- A read that is its transaction's first write (an agent's search, in autocommit or first in
    -- its transaction) commits without waiting for the WAL flush, which would cost more than the
    -- search: a recorded read is otherwise a read-only transaction, which flushes nothing. Any
    -- later write of the memory tables in the same transaction puts the wait back
    -- (_reads_durable_writes). What is lost in a crash is at most the reads of the last
    -- wal_writer_delay x 3 that nothing durable followed: the next commit that waits for the flush
    -- (what the agent does next) makes the earlier reads durable too, as WAL is flushed in order.
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        PERFORM set_config('nexus.reads_commit', current_setting('synchronous_commit'), true);
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    INSERT INTO memory_system.reads (agent_id, function, query_sha256, query, kinds, ids)
    VALUES (p_agent, p_function, sha256(convert_to(p_query, 'UTF8')), CASE WHEN v_text THEN p_query END,
            coalesce(p_kinds, '{}'), coalesce(p_ids, '{}'));
    RETURN true;
END
$$;
COMMENT ON FUNCTION memory_system._record_read(text, text, text[], bigint[], text) IS
'Internal: called once at the end of each read function of the API with what it returned (kinds and
ids in order). If the agent''s reads are recorded (read_settings, else the setting reads), appends a
row to memory_system.reads: the agent, the time, the function, the SHA-256 of p_query (the text too
if read_settings.query_text, else the setting reads_query_text, says so), the kinds and ids.
Returns whether it recorded. Errors: NX101 recording as another agent than the caller; NX102 a
recorded read in a read-only transaction (a replica). Callers: the nexus.* read functions.';


CREATE OR REPLACE FUNCTION memory_system._reads_durable_writes()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF nullif(current_setting('nexus.reads_commit', true), '') IS NOT NULL THEN
        PERFORM set_config('synchronous_commit', current_setting('nexus.reads_commit'), true);
        PERFORM set_config('nexus.reads_commit', '', true);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._reads_durable_writes() IS
'Internal trigger (statement, on every table an agent writes): a transaction whose recorded read
made its commit asynchronous (memory_system._record_read) commits synchronously again, as set
before, once it writes memories too.';

DO $$
DECLARE
    v_table regclass;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['nexus_memory.zep_episodic_memory', 'nexus_memory.semantic_memories',
                                   'nexus_memory.working_memory_contexts', 'nexus_memory.store_items',
                                   'nexus_memory.store_texts', 'consciousness.consciousness_checkpoints',
                                   'consciousness.distributed_consensus', 'memory_system.retention_rules']::regclass[]
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER reads_durable_writes AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION memory_system._reads_durable_writes()', v_table);
    END LOOP;
END
$$;


CREATE OR REPLACE FUNCTION memory_system._reads_refuse_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- whole days go by dropping their partition; rows of the DEFAULT partition past their
    -- retention, and an erased agent's, by the owner's functions that set this for their transaction
    IF TG_OP = 'DELETE' AND current_setting('nexus.reads_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the read record is append-only: % refused', TG_OP USING ERRCODE = 'NX100';
END
$$;
COMMENT ON FUNCTION memory_system._reads_refuse_change() IS
'Internal trigger: refuses UPDATE, DELETE and TRUNCATE of memory_system.reads (NX100), to the owner
too; only memory_system._reads_maintain and memory_system.reads_erase delete rows.';

CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON memory_system.reads
    FOR EACH ROW EXECUTE FUNCTION memory_system._reads_refuse_change();
CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON memory_system.reads
    FOR EACH STATEMENT EXECUTE FUNCTION memory_system._reads_refuse_change();


CREATE OR REPLACE FUNCTION memory_system._reads_maintain(p_ahead integer DEFAULT 7)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- a partition's lock waits for no one (reads queue behind it): what cannot be done now is done at
-- the next sweep
SET lock_timeout = '50ms'
AS $$
DECLARE
    v_today  date := (now() AT TIME ZONE 'UTC')::date;
    v_keep   integer := coalesce((SELECT s.value::integer FROM memory_system.settings AS s
                                   WHERE s.name = 'reads_keep_days'), 90);
    v_day    date;
    v_part   record;
BEGIN
    BEGIN
        -- today and the days ahead; a day that already has rows in the DEFAULT partition keeps
        -- them there (creating its partition would fail)
        FOR v_day IN SELECT d::date FROM generate_series(v_today, v_today + p_ahead, interval '1 day') AS d LOOP
            CONTINUE WHEN to_regclass(format('nexus_parts.reads_%s', to_char(v_day, 'YYYYMMDD'))) IS NOT NULL;
            CONTINUE WHEN EXISTS (SELECT FROM nexus_parts.reads_default AS r
                                   WHERE r.read_at >= v_day::timestamp AT TIME ZONE 'UTC'
                                     AND r.read_at < (v_day + 1)::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('CREATE TABLE nexus_parts.%I PARTITION OF memory_system.reads FOR VALUES FROM (%L) TO (%L)',
                           'reads_' || to_char(v_day, 'YYYYMMDD'), v_day::timestamp AT TIME ZONE 'UTC',
                           (v_day + 1)::timestamp AT TIME ZONE 'UTC');
        END LOOP;
        -- the days past their retention: whole partitions dropped, DEFAULT rows deleted
        FOR v_part IN
            SELECT c.relname FROM pg_catalog.pg_inherits AS i
              JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'memory_system.reads'::regclass AND c.relname ~ '^reads_[0-9]{8}$'
               AND to_date(substr(c.relname, 7), 'YYYYMMDD') < v_today - v_keep
        LOOP
            EXECUTE format('DROP TABLE nexus_parts.%I', v_part.relname);
        END LOOP;
        PERFORM set_config('nexus.reads_purge', 'on', true);
        DELETE FROM nexus_parts.reads_default AS r WHERE r.read_at < (v_today - v_keep)::timestamp AT TIME ZONE 'UTC';
        PERFORM set_config('nexus.reads_purge', 'off', true);
    EXCEPTION WHEN lock_not_available THEN
        NULL;
    END;
END
$$;
COMMENT ON FUNCTION memory_system._reads_maintain(integer) IS
'Internal: makes the read record''s day partitions (UTC) for today and p_ahead days ahead, drops
those older than the setting reads_keep_days (default 90) and deletes DEFAULT-partition rows as old;
waits at most 50 ms for a lock, else leaves the work to the next call. Run by
memory_system.retention_sweep at each heartbeat.';


CREATE OR REPLACE FUNCTION memory_system.reads_erase(p_agent text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    PERFORM set_config('nexus.reads_purge', 'on', true);
    DELETE FROM memory_system.reads AS r WHERE r.agent_id = p_agent;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    PERFORM set_config('nexus.reads_purge', 'off', true);
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION memory_system.reads_erase(text) IS
'Deletes every recorded read of an agent (erasing a removed agent: its record holds query hashes
and, if configured, query texts); returns how many. The only way rows leave the read record but
by retention. Callers: the owner only.';


CREATE OR REPLACE FUNCTION memory_system.reads_set(p_on boolean, p_agent text DEFAULT NULL,
                                                   p_query_text boolean DEFAULT NULL,
                                                   p_keep_days integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_keep_days IS NOT NULL AND p_keep_days < 1 THEN
        RAISE EXCEPTION 'reads are kept at least 1 day, got %', p_keep_days USING ERRCODE = 'NX103';
    END IF;
    IF p_agent IS NULL THEN
        INSERT INTO memory_system.settings AS s (name, value)
        SELECT v.name, v.value FROM (VALUES ('reads', CASE p_on WHEN true THEN 'on' WHEN false THEN 'off' END),
                                            ('reads_query_text', CASE p_query_text WHEN true THEN 'on' WHEN false THEN 'off' END))
                                    AS v (name, value)
         WHERE v.value IS NOT NULL
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    ELSE
        IF NOT EXISTS (SELECT FROM memory_system.agents AS a WHERE a.agent_id = p_agent) THEN
            RAISE EXCEPTION 'no agent %', quote_literal(p_agent) USING ERRCODE = 'NX096';
        END IF;
        IF p_on IS NULL THEN
            RAISE EXCEPTION 'say on or off for agent %', p_agent USING ERRCODE = 'NX103';
        END IF;
        INSERT INTO memory_system.read_settings AS s (agent_id, record, query_text)
        VALUES (p_agent, p_on, p_query_text)
        ON CONFLICT (agent_id) DO UPDATE
           SET record = EXCLUDED.record, query_text = coalesce(EXCLUDED.query_text, s.query_text),
               updated_at = now();
    END IF;
    IF p_keep_days IS NOT NULL THEN
        INSERT INTO memory_system.settings AS s (name, value) VALUES ('reads_keep_days', p_keep_days::text)
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
    END IF;
    PERFORM memory_system._reads_maintain();
END
$$;
COMMENT ON FUNCTION memory_system.reads_set(boolean, text, boolean, integer) IS
'Turns the read record on or off for one agent (p_agent; overrides the setting for all) or for all
(p_agent NULL: the setting reads); p_query_text: keep the query text too (per agent, or for all);
p_keep_days: how many days of reads are kept (for all). Errors: NX096 unknown agent, NX103 bad
argument. Callers: the owner (nexus reads on|off).';


CREATE OR REPLACE FUNCTION memory_system.reads_status()
RETURNS TABLE (agent_id text, record boolean, query_text boolean, keep_days integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NULL::text, coalesce(g.value = 'on', false), coalesce(t.value = 'on', false),
           coalesce(k.value::integer, 90)
      FROM (SELECT) AS one
      LEFT JOIN memory_system.settings AS g ON g.name = 'reads'
      LEFT JOIN memory_system.settings AS t ON t.name = 'reads_query_text'
      LEFT JOIN memory_system.settings AS k ON k.name = 'reads_keep_days'
    UNION ALL
    SELECT s.agent_id, s.record, s.query_text, NULL FROM memory_system.read_settings AS s
$$;
COMMENT ON FUNCTION memory_system.reads_status() IS
'The read record''s settings: the first row (agent_id NULL) for all agents with the days kept, then
one row per agent with its own. Callers: the owner, analysts.';


CREATE OR REPLACE FUNCTION nexus.read_log(
    agent    text DEFAULT NULL,
    since    timestamptz DEFAULT NULL,
    until    timestamptz DEFAULT NULL,
    limit_n  integer DEFAULT 100)
RETURNS TABLE (read_at timestamptz, function text, query_sha256 bytea, query text, kinds text[], ids bigint[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF agent IS NOT NULL AND agent <> current_user THEN
        RAISE EXCEPTION 'an agent reads its own read record only (asked for %)', agent USING ERRCODE = 'NX101';
    END IF;
    IF limit_n IS NULL OR limit_n NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'limit_n must be between 1 and 10000, got %', limit_n USING ERRCODE = 'NX103';
    END IF;
    RETURN QUERY
    SELECT r.read_at, r.function, r.query_sha256, r.query, r.kinds, r.ids
      FROM memory_system.reads AS r
     WHERE r.agent_id = (current_user::text COLLATE "default")
       AND (since IS NULL OR r.read_at >= since) AND (until IS NULL OR r.read_at < until)
     ORDER BY r.read_at, r.id
     LIMIT limit_n;
END
$$;
COMMENT ON FUNCTION nexus.read_log(text, timestamptz, timestamptz, integer) IS
'The calling agent''s recorded reads (empty unless its reads are recorded: docs/privacy.md), oldest
first, within [since, until): when, by which function, the SHA-256 of the query (its text if kept)
and the kinds and ids of the memories returned, in the order returned. Errors: NX101 agent names
another agent; NX103 bad limit. Any agent, on its own reads.';


CREATE OR REPLACE FUNCTION memory_system.reads_of(p_agent text, p_since timestamptz DEFAULT NULL,
                                                  p_until timestamptz DEFAULT NULL, p_limit integer DEFAULT 1000)
RETURNS TABLE (read_at timestamptz, function text, login text, query_sha256 bytea, query text, kinds text[],
               ids bigint[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.read_at, r.function, r.login, r.query_sha256, r.query, r.kinds, r.ids
      FROM memory_system.reads AS r
     WHERE r.agent_id = p_agent
       AND (p_since IS NULL OR r.read_at >= p_since) AND (p_until IS NULL OR r.read_at < p_until)
     ORDER BY r.read_at, r.id
     LIMIT p_limit
$$;
COMMENT ON FUNCTION memory_system.reads_of(text, timestamptz, timestamptz, integer) IS
'What an agent was shown: its recorded reads within [p_since, p_until), oldest first, with the role
that logged in, the SHA-256 of each query (its text if kept) and the kinds and ids returned, in
order. Callers: the owner (nexus reads --agent NAME --since ...), analysts.';
