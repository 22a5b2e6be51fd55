-- Storage (issue #11): drop what no query reads any more. Measured at 1M events with
-- core/examples/gen_rollups.rs (BENCHMARKS.md, "Storage at 1M"), in bytes per event.
--
-- hits_hourly (77 B): pageviews per UTC hour and full dimension key. Every endpoint reads the visit
-- rollups (visit_hourly, visit_daily) or, for filter combinations they do not cover, the visit-level
-- tables (sessions, page_visits); nothing has read this table since the visit rollups (0005), and the
-- consumer no longer writes it.
DROP TABLE hits_hourly;

-- sessions_by_visitor (43 B) served the consumer's prior-session lookup, and sessions_recent (27 B)
-- the live endpoints; both now read open_visits (0005). The visit-level path reads sessions by its
-- primary key (tenant_id, first_ts, ...) and by sessions_by_key (the upsert target, kept).
DROP INDEX sessions_by_visitor;
DROP INDEX sessions_recent;
