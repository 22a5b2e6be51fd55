-- Web vitals (issue #12): a log-scale histogram per tenant, UTC day, metric, domain and page, so the
-- web_vitals_* endpoints read at most (pages × ~130 buckets) rows per day and metric however much
-- traffic there was. Written by the consumer from `web_vital` events (core/src/vitals.rs).
CREATE TABLE web_vitals_daily (
  tenant_id TEXT NOT NULL,
  day       INTEGER NOT NULL,   -- start of the UTC day, unix seconds
  metric    TEXT NOT NULL,      -- LCP, INP, CLS, FCP, TTFB
  domain    TEXT NOT NULL,
  pathname  TEXT NOT NULL,
  bucket    INTEGER NOT NULL,   -- floor(8 * log2(1 + value)), value in ms (CLS in thousandths)
  rating    INTEGER NOT NULL,   -- 0 good, 1 needs improvement, 2 poor (standard thresholds, exact)
  n         INTEGER NOT NULL,   -- measurements
  total     REAL NOT NULL,      -- their sum, in the metric's unit (for averages)
  PRIMARY KEY (tenant_id, day, metric, domain, pathname, bucket, rating)
) WITHOUT ROWID;

-- Outbound link clicks, file downloads and 404 pages (the tracker's opt-in captures) per tenant, UTC
-- day, domain and target (the link's stripped URL, or the missing page's path), for the dashboard's
-- tables (core/src/captures.rs). Rows grow with distinct targets, not with traffic.
CREATE TABLE captures_daily (
  tenant_id TEXT NOT NULL,
  day       INTEGER NOT NULL,   -- start of the UTC day, unix seconds
  kind      TEXT NOT NULL,      -- outbound, download, 404
  domain    TEXT NOT NULL,
  target    TEXT NOT NULL,
  n         INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day, kind, domain, target)
) WITHOUT ROWID;
