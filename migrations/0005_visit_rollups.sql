-- Pre-aggregated visit rollups: read cost grows with the range and the number of distinct values,
-- never with visits or events (core/src/rollup/visits.rs, core/src/query/rollups.rs).
--
-- A visit is attributed to the UTC hour (and day) of its first hit. Its measures are kept up to date by
-- deltas: when a later batch extends a visit, the consumer subtracts the visit's old contribution and
-- adds the new one, using the visit's state in `open_visits`. Dimension codes (`dim`):
--   ''    every visit (value '')          src  source (referrer host, '' = direct)
--   br    browser     os  OS     dev  device     ctry  country
--   us/um/uc  utm_source / utm_medium / utm_campaign
--   cmp   utm_campaign, utm_source, utm_medium joined by U+001F (only visits with a campaign)
--   en/ex entry / exit page    vp  a page the visit viewed (visit measures of the visits that viewed it)
--   pg    a page: visits = visits that viewed it, pageviews = its hits, at the hour of its first hit
--
-- Unique visitors: visitor ids rotate with the daily salt, so distinct visitors of whole UTC days add up.
-- Within a UTC day, `visitors` counts the distinct visitors with a visit starting in the hour,
-- `visitors_first` those whose first such hour of the day it is and `visitors_last` those whose last it
-- is: any prefix of a UTC day sums `visitors_first`, any suffix `visitors_last`, exactly. A local day in
-- any zone with a whole-hour offset is a suffix of one UTC day plus a prefix of the next.

CREATE TABLE visit_hourly (
  tenant_id      TEXT NOT NULL,
  dim            TEXT NOT NULL,
  hour           INTEGER NOT NULL,  -- start of the UTC hour of the visit's first hit (page: of the page's)
  value          TEXT NOT NULL,
  domain         TEXT NOT NULL,
  visits         INTEGER NOT NULL,
  pageviews      INTEGER NOT NULL,
  bounces        INTEGER NOT NULL,
  duration       INTEGER NOT NULL,  -- seconds, summed
  visitors       INTEGER NOT NULL,
  visitors_first INTEGER NOT NULL,
  visitors_last  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, dim, hour, value, domain)
) WITHOUT ROWID;

CREATE TABLE visit_daily (
  tenant_id TEXT NOT NULL,
  dim       TEXT NOT NULL,
  day       INTEGER NOT NULL,  -- start of the UTC day
  value     TEXT NOT NULL,
  domain    TEXT NOT NULL,
  visits    INTEGER NOT NULL,
  pageviews INTEGER NOT NULL,
  bounces   INTEGER NOT NULL,
  duration  INTEGER NOT NULL,
  visitors  INTEGER NOT NULL,  -- exact distinct visitors of the UTC day
  PRIMARY KEY (tenant_id, dim, day, value, domain)
) WITHOUT ROWID;

-- Each live visit's current state (JSON), the consumer's source of prior visits. Rows are pruned a few
-- hours after their last hit (far beyond the 30-minute session timeout). `rev` makes concurrent
-- consumers safe: a writer that read an older revision fails its whole transaction and retries.
CREATE TABLE open_visits (
  tenant_id   TEXT NOT NULL,
  session_key TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  domain      TEXT NOT NULL,
  last_ts     INTEGER NOT NULL,
  rev         INTEGER NOT NULL,
  state       TEXT NOT NULL,
  PRIMARY KEY (tenant_id, session_key)
) WITHOUT ROWID;
CREATE INDEX open_visits_by_visitor ON open_visits (tenant_id, visitor_id);
CREATE INDEX open_visits_by_last ON open_visits (tenant_id, last_ts);

-- Per visitor and UTC day: visits per (domain, dim, value) and hour (JSON), for the exact visitor
-- counts above. Visitor ids change daily, so rows are pruned two days after their day.
CREATE TABLE visitor_days (
  tenant_id  TEXT NOT NULL,
  visitor_id TEXT NOT NULL,
  day        INTEGER NOT NULL,
  rev        INTEGER NOT NULL,
  state      TEXT NOT NULL,
  PRIMARY KEY (tenant_id, visitor_id, day)
) WITHOUT ROWID;
CREATE INDEX visitor_days_by_day ON visitor_days (tenant_id, day);
