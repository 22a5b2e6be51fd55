-- Visit segments (issue #11, docs/rollups.md "Visit segments"): `top_pages` read from segments counts
-- the pages of its window whose visit started on a sealed day from the segments, and the others in SQL
-- (core/src/query/segment_route.rs). Among those others are the pages of visits that started before
-- the first day it scans (the day before the window's first UTC day): such a page lies at least a day
-- after its visit's first hit (the window starts on the next UTC day or later), so it has
-- `since_visit >= 86400`. Without an index that SQL read every page of the window (1.66M rows, about
-- 500 ms for the largest tenant at 10M, BENCHMARKS.md "Visit segments") to find almost none; this
-- partial index holds only the pages of visits longer than a day, so the read is a seek.
CREATE INDEX page_visits_after_a_day ON page_visits (tenant_id, first_ts) WHERE since_visit >= 86400;
