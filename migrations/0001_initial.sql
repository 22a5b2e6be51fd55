-- Starling's D1 schema: rollups and per-session state, never raw events (those live in R2).
-- Every table is keyed by tenant_id first: every query the worker runs binds the tenant.
-- Times are UTC unix seconds; `hour` is the start of the UTC hour (ts - ts % 3600).

-- One row per visit. Source of visits, bounce rate, durations, unique visitors and the session-level top lists.
CREATE TABLE sessions (
  tenant_id    TEXT NOT NULL,
  session_key  TEXT NOT NULL,   -- client session_id, or one derived at the edge (30 minutes of inactivity)
  domain       TEXT NOT NULL,
  visitor_id   TEXT NOT NULL,   -- keyed hash with a daily rotating salt; not reversible to IP or user agent
  first_ts     INTEGER NOT NULL,
  last_ts      INTEGER NOT NULL,
  pageviews    INTEGER NOT NULL,
  entry_path   TEXT NOT NULL,
  exit_path    TEXT NOT NULL,
  source       TEXT NOT NULL,   -- referrer host without www; '' = direct or internal
  utm_source   TEXT NOT NULL,
  utm_medium   TEXT NOT NULL,
  utm_campaign TEXT NOT NULL,
  browser      TEXT NOT NULL,
  os           TEXT NOT NULL,
  device       TEXT NOT NULL,
  country      TEXT NOT NULL,
  PRIMARY KEY (tenant_id, session_key)
) WITHOUT ROWID;
CREATE INDEX sessions_by_time ON sessions (tenant_id, first_ts);
CREATE INDEX sessions_recent ON sessions (tenant_id, last_ts);

-- One row per (session, page): visits per page are exact counts of rows, pageviews the sum of hits.
CREATE TABLE page_visits (
  tenant_id   TEXT NOT NULL,
  session_key TEXT NOT NULL,
  pathname    TEXT NOT NULL,
  domain      TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  hits        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, session_key, pathname)
) WITHOUT ROWID;
CREATE INDEX page_visits_by_time ON page_visits (tenant_id, first_ts);

-- Pageviews per hour and full dimension key (the cube). Sums over any hour range are exact.
CREATE TABLE hits_hourly (
  tenant_id    TEXT NOT NULL,
  domain       TEXT NOT NULL,
  hour         INTEGER NOT NULL,
  pathname     TEXT NOT NULL,
  source       TEXT NOT NULL,
  browser      TEXT NOT NULL,
  os           TEXT NOT NULL,
  device       TEXT NOT NULL,
  country      TEXT NOT NULL,
  utm_source   TEXT NOT NULL,
  utm_medium   TEXT NOT NULL,
  utm_campaign TEXT NOT NULL,
  hits         INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, hour, domain, pathname, source, browser, os, device, country, utm_source, utm_medium, utm_campaign)
) WITHOUT ROWID;

-- Sessions active per minute, for current_visitors and trend; rows older than a day are pruned by the cron.
CREATE TABLE active_minutes (
  tenant_id   TEXT NOT NULL,
  minute      INTEGER NOT NULL,
  domain      TEXT NOT NULL,
  session_key TEXT NOT NULL,
  PRIMARY KEY (tenant_id, minute, domain, session_key)
) WITHOUT ROWID;

CREATE TABLE domains (
  tenant_id  TEXT NOT NULL,
  domain     TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  total_hits INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, domain)
) WITHOUT ROWID;

CREATE TABLE actions (
  tenant_id    TEXT NOT NULL,
  domain       TEXT NOT NULL,
  action       TEXT NOT NULL,
  last_payload TEXT NOT NULL,
  last_seen    INTEGER NOT NULL,
  total        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, domain, action)
) WITHOUT ROWID;

-- Counted but kept out of every metric.
CREATE TABLE bot_hits_daily (
  tenant_id TEXT NOT NULL,
  day       TEXT NOT NULL,
  hits      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

-- Quarantined rows are kept in R2 (quarantine/...); this counts them per tenant, day and reason.
CREATE TABLE quarantine_daily (
  tenant_id TEXT NOT NULL,
  day       TEXT NOT NULL,
  reason    TEXT NOT NULL,
  rows      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day, reason)
) WITHOUT ROWID;

-- Idempotency: a queue batch is applied to the rollups at most once (its id is inserted in the same transaction).
CREATE TABLE applied_batches (
  batch_id   TEXT PRIMARY KEY,
  applied_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Daily visitor-id salts: random, deleted after two days so old visitor ids cannot be recomputed.
CREATE TABLE salts (
  day  TEXT PRIMARY KEY,
  salt TEXT NOT NULL
) WITHOUT ROWID;
