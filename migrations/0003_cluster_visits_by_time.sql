-- Cluster the visit-level tables by tenant and time.
--
-- Every query reads one tenant's visits in a time range. Keyed by (tenant_id, session_key), a range scan
-- went through a time index and then one random primary-key lookup per visit: about 0.4 s for a tenant
-- with 75,000 visits in 30 days (bench/query.mjs). Keyed by (tenant_id, first_ts, ...), the same scan
-- reads consecutive pages. The upserts keep their conflict targets through unique indexes on the old
-- keys (SQLite checks an upsert's target constraint first, so an equal first_ts is still an update).
-- Also adds the index the consumer's prior-session lookup (tenant_id, visitor_id IN ...) needs.

CREATE TABLE sessions_v2 (
  tenant_id    TEXT NOT NULL,
  session_key  TEXT NOT NULL,
  domain       TEXT NOT NULL,
  visitor_id   TEXT NOT NULL,
  first_ts     INTEGER NOT NULL,
  last_ts      INTEGER NOT NULL,
  pageviews    INTEGER NOT NULL,
  entry_path   TEXT NOT NULL,
  exit_path    TEXT NOT NULL,
  source       TEXT NOT NULL,
  utm_source   TEXT NOT NULL,
  utm_medium   TEXT NOT NULL,
  utm_campaign TEXT NOT NULL,
  browser      TEXT NOT NULL,
  os           TEXT NOT NULL,
  device       TEXT NOT NULL,
  country      TEXT NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key)
) WITHOUT ROWID;
INSERT INTO sessions_v2 (tenant_id, session_key, domain, visitor_id, first_ts, last_ts, pageviews, entry_path,
  exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country)
SELECT tenant_id, session_key, domain, visitor_id, first_ts, last_ts, pageviews, entry_path,
  exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v2 RENAME TO sessions;
CREATE UNIQUE INDEX sessions_by_key ON sessions (tenant_id, session_key);
CREATE INDEX sessions_recent ON sessions (tenant_id, last_ts);
CREATE INDEX sessions_by_visitor ON sessions (tenant_id, visitor_id, last_ts);

CREATE TABLE page_visits_v2 (
  tenant_id   TEXT NOT NULL,
  session_key TEXT NOT NULL,
  pathname    TEXT NOT NULL,
  domain      TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  hits        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key, pathname)
) WITHOUT ROWID;
INSERT INTO page_visits_v2 (tenant_id, session_key, pathname, domain, first_ts, hits)
SELECT tenant_id, session_key, pathname, domain, first_ts, hits FROM page_visits;
DROP TABLE page_visits;
ALTER TABLE page_visits_v2 RENAME TO page_visits;
CREATE UNIQUE INDEX page_visits_by_key ON page_visits (tenant_id, session_key, pathname);
