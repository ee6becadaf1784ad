-- Forgetting by filter (docs/privacy.md): an agent removes its memories that match the filters of
-- nexus.memory_search, with every copy derived from them, and gets a receipt of counts (no
-- content). SECURITY INVOKER: row-level security keeps every statement inside the caller's rows.
-- The copies go with their rows: vectors by foreign key (ON DELETE CASCADE), BM25 postings and
-- text_stats by the text-index triggers, queue items in every state (done ones hold the content's
-- checksum) by the dequeue trigger, the import ledger's entries (a checksum of the source content)
-- by the trigger below, and the Redis mirror's copy through the outbox (cache_notify_delete).

CREATE OR REPLACE FUNCTION nexus._forget_batch(
    p_agent              text,
    p_kind               "char",
    p_after              bigint,
    p_limit              integer,
    p_session            text,
    p_since              timestamptz,
    p_until              timestamptz,
    p_tags_all           text[],
    p_metadata_contains  jsonb,
    p_episode_id         bigint,
    p_dry_run            boolean,
    OUT last_id          bigint,
    OUT memories         bigint,
    OUT store_texts      bigint,
    OUT vectors          bigint,
    OUT postings         bigint,
    OUT queue_items      bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_agent  text := p_agent;
    v_ids    bigint[];
    v_texts  bigint[];
BEGIN
    -- the next p_limit memories of the kind after id p_after that match, and their postings (one
    -- per distinct lexeme of their content)
    IF p_kind = 'e' THEN
        SELECT array_agg(e.id ORDER BY e.id), sum(length(e.content_tsv)) INTO v_ids, postings
          FROM (SELECT e.id, e.content_tsv FROM nexus_memory.zep_episodic_memory AS e
                 WHERE e.agent_id = v_agent AND e.id > p_after
                   AND (p_episode_id IS NULL OR e.id = p_episode_id)
                   AND (p_session IS NULL OR e.session_id = p_session)
                   AND nexus._memory_filter(e.created_at, e.tags, e.metadata, p_since, p_until, p_tags_all,
                                            p_metadata_contains)
                 ORDER BY e.id LIMIT p_limit) AS e;
        SELECT count(*) INTO vectors FROM nexus_memory.episode_embeddings AS x
         WHERE x.agent_id = v_agent AND x.episode_id = ANY (v_ids);
        SELECT count(*) INTO queue_items FROM memory_system.embeddings_queue AS q
         WHERE q.agent_id = v_agent AND q.source_table = 'zep_episodic_memory' AND q.source_id = ANY (v_ids);
    ELSIF p_kind = 's' THEN
        -- facts belong to no session
        SELECT array_agg(s.id ORDER BY s.id), sum(length(s.content_tsv)) INTO v_ids, postings
          FROM (SELECT s.id, s.content_tsv FROM nexus_memory.semantic_memories AS s
                 WHERE s.agent_id = v_agent AND s.id > p_after AND p_session IS NULL
                   AND nexus._memory_filter(s.created_at, s.tags, s.metadata, p_since, p_until, p_tags_all,
                                            p_metadata_contains)
                 ORDER BY s.id LIMIT p_limit) AS s;
        SELECT count(*) INTO vectors FROM nexus_memory.semantic_memory_embeddings AS x
         WHERE x.agent_id = v_agent AND x.memory_id = ANY (v_ids);
        SELECT count(*) INTO queue_items FROM memory_system.embeddings_queue AS q
         WHERE q.agent_id = v_agent AND q.source_table = 'semantic_memories' AND q.source_id = ANY (v_ids);
    ELSE
        -- store items: no session and no tags; their metadata is what search shows of them,
        -- {"namespace": [...], "key": ...}
        SELECT array_agg(i.id ORDER BY i.id) INTO v_ids
          FROM (SELECT i.id FROM nexus_memory.store_items AS i
                 WHERE i.agent_id = v_agent AND i.id > p_after AND p_session IS NULL
                   AND nexus._memory_filter(i.created_at, '{}', jsonb_build_object('namespace', i.namespace,
                                                                                  'key', i.key),
                                            p_since, p_until, nullif(p_tags_all, '{}'), p_metadata_contains)
                 ORDER BY i.id LIMIT p_limit) AS i;
        SELECT array_agg(t.id), sum(length(t.content_tsv)) INTO v_texts, postings
          FROM nexus_memory.store_texts AS t WHERE t.agent_id = v_agent AND t.item_id = ANY (v_ids);
        SELECT count(*) INTO vectors FROM nexus_memory.store_text_embeddings AS x
         WHERE x.agent_id = v_agent AND x.text_id = ANY (v_texts);
        SELECT count(*) INTO queue_items FROM memory_system.embeddings_queue AS q
         WHERE q.agent_id = v_agent AND q.source_table = 'store_texts' AND q.source_id = ANY (v_texts);
        store_texts := coalesce(cardinality(v_texts), 0);
    END IF;
    last_id := v_ids[cardinality(v_ids)];
    memories := coalesce(cardinality(v_ids), 0);
    store_texts := coalesce(store_texts, 0);
    postings := coalesce(postings, 0);
    IF p_dry_run OR memories = 0 THEN
        RETURN;
    END IF;
    -- one statement per batch: the triggers take the postings, counters, queue items, ledger
    -- entries and the Redis mirror's copy with the rows; the foreign keys the vectors (and a
    -- store item's texts)
    IF p_kind = 'e' THEN
        DELETE FROM nexus_memory.zep_episodic_memory AS e WHERE e.agent_id = v_agent AND e.id = ANY (v_ids);
    ELSIF p_kind = 's' THEN
        DELETE FROM nexus_memory.semantic_memories AS s WHERE s.agent_id = v_agent AND s.id = ANY (v_ids);
    ELSE
        DELETE FROM nexus_memory.store_items AS i WHERE i.agent_id = v_agent AND i.id = ANY (v_ids);
    END IF;
END
$$;
COMMENT ON FUNCTION nexus._forget_batch(text, "char", bigint, integer, text, timestamptz, timestamptz, text[], jsonb,
                                        bigint, boolean) IS
'Internal: one batch of nexus.forget. The first p_limit memories of p_agent (the caller or a space it
may write; row-level security holds either way) of kind p_kind (e
episode, s fact, t store item) with an id over p_after that match the filters (p_episode_id: that
episode only): their count, the last id, and the copies derived from them (store texts, vectors,
postings, queue items); deleted with them unless p_dry_run.';


CREATE OR REPLACE FUNCTION nexus.forget(
    kinds              text[] DEFAULT '{episode,semantic,store}',
    tags_all           text[] DEFAULT NULL,
    session            text DEFAULT NULL,
    since              timestamptz DEFAULT NULL,
    until              timestamptz DEFAULT NULL,
    metadata_contains  jsonb DEFAULT NULL,
    space              text DEFAULT NULL,
    dry_run            boolean DEFAULT NULL,
    episode_id         bigint DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_kinds     "char"[] := nexus._search_kinds(kinds);
    -- an empty tag list or object matches every memory: it is no criterion
    v_tags      text[] := nullif(tags_all, '{}');
    v_meta      jsonb := nullif(metadata_contains, '{}');
    v_filtered  boolean;
    v_dry       boolean;
    v_kind      "char";
    v_after     bigint;
    v_b         record;
    v_batches   integer := 0;
    v_outbox    integer := 0;
    v_per_kind  jsonb := '{}';
    v_places    bigint[] := '{0,0,0,0,0}';
    v_agent     text;
BEGIN
    PERFORM nexus.current_agent();
    -- the caller's own memory, or a space it may write (NX080 otherwise, as for any write)
    v_agent := memory_system._write_target(space);
    v_filtered := session IS NOT NULL OR since IS NOT NULL OR until IS NOT NULL OR v_tags IS NOT NULL
                  OR v_meta IS NOT NULL;
    IF episode_id IS NOT NULL AND v_filtered THEN
        RAISE EXCEPTION 'forget takes an episode id or a filter, not both' USING ERRCODE = 'NX091';
    END IF;
    IF episode_id IS NULL AND NOT v_filtered THEN
        RAISE EXCEPTION 'forget needs a criterion: tags_all, session, since, until or metadata_contains (or an episode id)'
            USING ERRCODE = 'NX090',
                  HINT = 'Erasing every memory of an agent is the operator''s nexus agent remove NAME --delete-memories.';
    END IF;
    -- a filter is a dry run unless told otherwise; one episode by id goes at once
    v_dry := coalesce(dry_run, episode_id IS NULL);
    IF episode_id IS NOT NULL THEN
        v_kinds := '{e}';
    END IF;
    FOREACH v_kind IN ARRAY ARRAY['e', 's', 't']::"char"[] LOOP
        CONTINUE WHEN NOT v_kind = ANY (v_kinds);
        v_after := 0;
        v_per_kind := v_per_kind || jsonb_build_object(
            CASE v_kind WHEN 'e' THEN 'episode' WHEN 's' THEN 'semantic' ELSE 'store' END, 0);
        LOOP
            SELECT * INTO v_b FROM nexus._forget_batch(v_agent, v_kind, v_after, 10000, session, since, until, v_tags,
                                                       v_meta, episode_id, v_dry);
            EXIT WHEN v_b.memories = 0;
            v_batches := v_batches + 1;
            v_after := v_b.last_id;
            v_per_kind := v_per_kind || jsonb_build_object(
                CASE v_kind WHEN 'e' THEN 'episode' WHEN 's' THEN 'semantic' ELSE 'store' END,
                (v_per_kind ->> CASE v_kind WHEN 'e' THEN 'episode' WHEN 's' THEN 'semantic' ELSE 'store' END)::bigint
                + v_b.memories);
            v_places := ARRAY[v_places[1] + v_b.memories, v_places[2] + v_b.store_texts,
                              v_places[3] + v_b.vectors, v_places[4] + v_b.postings, v_places[5] + v_b.queue_items];
            -- each batch of episodes deleted queues one refresh of the agent's recent list (a
            -- space's rows are not mirrored)
            IF v_kind = 'e' AND NOT v_dry AND v_agent = current_user AND memory_system._cache_mirror_leading() THEN
                v_outbox := v_outbox + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object(
        'dry_run', v_dry, 'at', clock_timestamp(), 'batches', v_batches, 'kinds', v_per_kind,
        'places', jsonb_build_object('rows', v_places[1], 'store_texts', v_places[2], 'vectors', v_places[3],
                                     'postings', v_places[4], 'queue_items', v_places[5],
                                     'cache_outbox', v_outbox));
END
$$;
COMMENT ON FUNCTION nexus.forget(text[], text[], text, timestamptz, timestamptz, jsonb, text, boolean, bigint) IS
'Forgets the calling agent''s memories that match a filter, with every copy derived from them
(docs/privacy.md). The filters are memory_search''s: kinds (episode, semantic, store; default all
three), tags_all, session (episodes only), since/until (created_at), metadata_contains (store items:
against {"namespace", "key"}, as search shows them; they have no session and no tags). At least
one criterion is needed (an empty tag list or object is none). dry_run (default true for a
filter) only counts; dry_run => false deletes, in batches of 10,000 rows in one transaction: the
rows, store texts, vectors, BM25 postings (text_stats kept right), queue items in every state,
import-ledger entries, and the Redis mirror''s copy (through the outbox). episode_id => N instead of
a filter forgets that one episode at once (as delete_episode). Returns a receipt, no content:
{"dry_run", "at", "batches", "kinds": {kind: rows}, "places": {"rows", "store_texts", "vectors",
"postings", "queue_items", "cache_outbox"}}. space => NAME forgets in that space instead, which the
caller must be allowed to write (docs/spaces.md): every member''s rows there that match.
Errors: NX001 not an agent, NX031 unknown kind, NX080 no space the caller may write, NX090 no criterion,
NX091 an id and a filter.

MCP: Forget your memories for good, either one episode by its id or every memory that matches a
filter (at least one of tags_all, session, since, until, metadata_contains). With a filter it is a
dry run unless dry_run is false: first see what would go, then call again with dry_run false.
Returns a receipt: how many memories of each kind went (or would go) and how many derived copies
(vectors, text index entries, queued work) with them; no content.
- kinds: Which memories a filter covers: episode, semantic (facts), store (default: all three).
  Example: ["episode"].
- tags_all: Only memories carrying every one of these tags. Example: ["billing"].
- session: Only episodes of this conversation or task. Example: "onboarding".
- since: Only memories recorded at or after this time, ISO 8601. Example: "2025-06-01T00:00:00Z".
- until: Only memories recorded before this time, ISO 8601. Example: "2025-07-01T00:00:00Z".
- metadata_contains: Only memories whose metadata contains this JSON object. Example: {"customer": "ACME"}.
- space: Forget in this shared space instead of your own memory (one you may write; see the spaces tool). Example: "billing-team".
- dry_run: false to really forget what a filter matches (default true for a filter: only count;
  an episode id is forgotten at once). Example: false.
- episode_id: Forget this one episode instead of using a filter. Example: 42.';


-- The import ledger keeps a checksum of each imported row's source content: it goes with the row.
CREATE OR REPLACE FUNCTION memory_system._forget_import_ledger()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM memory_system.import_rows AS r USING old_rows AS o
     WHERE r.kind = CASE TG_TABLE_NAME WHEN 'zep_episodic_memory' THEN 'episode' ELSE 'semantic' END
       AND r.agent_id = o.agent_id AND r.target_id = o.id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memory_system._forget_import_ledger() IS
'Trigger (statement, after DELETE of episodes and facts): removes the import ledger''s entries of the
deleted rows (their source identity and content checksum). A rollback of the import then has
nothing left to undo for them; a new import of the same source brings them back.';

CREATE OR REPLACE TRIGGER forget_import_ledger AFTER DELETE ON nexus_memory.zep_episodic_memory
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_system._forget_import_ledger();
CREATE OR REPLACE TRIGGER forget_import_ledger AFTER DELETE ON nexus_memory.semantic_memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION memory_system._forget_import_ledger();
