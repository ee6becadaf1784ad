-- Search finds the facts that hold (docs/facts.md): memory_search, memory_similar and
-- text_candidates gain as_of and include_history, memory_search and memory_similar a fact's key
-- and validity in each hit. Their old signatures go here, with those of the internal branches
-- of memory_search that take the valid time; db/functions/api/search.sql makes the new ones.
DROP FUNCTION IF EXISTS nexus.memory_search(text, public.vector, integer, text[], text, timestamptz, timestamptz,
                                            text[], jsonb, text, integer, float8, float8, float8, interval,
                                            integer, integer, float8, integer);
DROP FUNCTION IF EXISTS nexus.memory_similar(text, bigint, integer, text[], integer);
DROP FUNCTION IF EXISTS nexus.text_candidates(text, text[], integer, integer, float8, float8);
DROP FUNCTION IF EXISTS nexus._memory_search_text(text, "char"[], text, integer, integer, text, timestamptz,
                                                  timestamptz, text[], jsonb);
DROP FUNCTION IF EXISTS nexus._memory_search_vector(public.vector, "char"[], integer, text, timestamptz,
                                                    timestamptz, text[], jsonb);
-- memory_stats counts the facts that hold and those that ended: new columns
DROP FUNCTION IF EXISTS nexus.memory_stats();
