-- get_fact and fact_history read a space's facts too (space => NAME, issue 26 with issue 25): their
-- signatures and that of their helper changed, so the old ones go here (see migration 0016 for why
-- drops live in migrations); db/functions/ creates the new ones.
DROP FUNCTION IF EXISTS nexus.get_fact(bigint, text, timestamptz, boolean);
DROP FUNCTION IF EXISTS nexus.fact_history(bigint, text);
DROP FUNCTION IF EXISTS memory_system._fact_rows(text, bigint[], timestamptz);
