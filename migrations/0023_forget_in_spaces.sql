-- nexus.forget works in a space the caller may write (issue 27 with issue 26): its batch function
-- takes the memory it deletes in (the caller's own or a space's id), so its old signature goes
-- (db/functions/api/forget.sql creates the new one; see migration 0016 for why drops live here).
DROP FUNCTION IF EXISTS nexus._forget_batch("char", bigint, integer, text, timestamptz, timestamptz, text[], jsonb,
                                            bigint, boolean);
