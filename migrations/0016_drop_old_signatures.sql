-- Functions whose signature changed: the old signature goes here, in a migration, so that an
-- upgraded database ends up with the same functions as a fresh one; db/functions/ (applied after
-- every migration run) creates the new ones.

-- memory_search before neighbour_weight, context, valid_at and neighbours (f833070: a new
-- signature and result). Until now this drop was in db/functions/api/search.sql.
DROP FUNCTION IF EXISTS nexus.memory_search(text, public.vector, integer, text[], text, timestamptz, timestamptz,
                                            text[], jsonb, text, integer, float8, float8, float8, interval,
                                            integer, integer);

-- store_search before df_budget (a042b19 added it and kept the old signature): databases made
-- between d8ac0b9 and a042b19 still have it.
DROP FUNCTION IF EXISTS nexus.store_search(text[], text, public.vector, jsonb, integer, integer, boolean,
                                           integer, integer);
