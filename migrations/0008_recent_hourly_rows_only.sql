-- Storage (issue #11): per-dimension hourly rows for the last two UTC days only. Measured at 1M events
-- with core/examples/gen_rollups.rs (BENCHMARKS.md, "Storage at 1M"): visit_hourly was 232 B/event,
-- 96% of it rows of a dimension (dim <> '') and 95% of those older than the last two UTC days.
--
-- The planner reads whole UTC days from visit_daily. A partial day (a time zone's edge hours, a
-- partial range, an hourly bucket) of a dimension is read from visit_hourly when it is at most a day
-- old (core/src/rollup/visits.rs, HOURLY_DAYS) and otherwise computed from sessions and page_visits,
-- exactly as the consumer would have summed it: one scan of the visits of those hours. The hourly
-- all-visits series (dim = '') is kept for every day, so unfiltered hourly and time-zone reads stay
-- rollup reads. The consumer no longer writes older per-dimension hourly rows, and the hourly cron
-- deletes them as they age (visits::prune_hourly, with an hour of slack for a query's clock).
DELETE FROM visit_hourly
WHERE dim <> '' AND hour < ((CAST(strftime('%s', 'now') AS INTEGER) - 3600) / 86400 - 1) * 86400;
