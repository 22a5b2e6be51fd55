-- Storage (issue #11): a page visit's domain is its visit's. Measured at 1M events with
-- core/examples/gen_rollups.rs (BENCHMARKS.md, "Storage at 1M"): page_visits was 82 B/event, its
-- domain column about 18 B of each row (0.9 rows per event).
--
-- Since migration 0007 the consumer writes a page visit with its visit's domain, and every reader
-- that needs it reads the page's session by the session's primary key
-- (tenant_id, first_ts - since_visit, session_key): a domain filter on pages joins the session.
ALTER TABLE page_visits DROP COLUMN domain;
