-- Storage (issue #11): the visit-level tables without their second indexes. Measured at 1M events with
-- core/examples/gen_rollups.rs (BENCHMARKS.md, "Storage at 1M"): sessions_by_key 24.4 B/event,
-- page_visits_by_key 64.5 B/event.
--
-- Both unique indexes existed only as upsert targets. The consumer now writes a visit's rows whole from
-- its state in open_visits, which says where the old rows are, so it upserts on the primary keys
-- (tenant_id, first_ts, session_key[, pathname]) and deletes a row whose first_ts moved.
--
-- Readers that went from a page to its session by (tenant_id, session_key) now use the session's own
-- primary key: page_visits.since_visit is the time from the visit's first hit to the page's first hit,
-- so a page's session is (tenant_id, first_ts - since_visit, session_key). Readers that go from a
-- session to its pages read the pages of the window once (core/src/query/pipes.rs, `pages_of_sessions`).
ALTER TABLE page_visits ADD COLUMN since_visit INTEGER NOT NULL DEFAULT 0;
UPDATE page_visits SET since_visit = first_ts - (
  SELECT s.first_ts FROM sessions s
  WHERE s.tenant_id = page_visits.tenant_id AND s.session_key = page_visits.session_key)
WHERE EXISTS (
  SELECT 1 FROM sessions s
  WHERE s.tenant_id = page_visits.tenant_id AND s.session_key = page_visits.session_key);
DROP INDEX sessions_by_key;
DROP INDEX page_visits_by_key;
