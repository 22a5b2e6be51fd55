-- Storage (issue #11): the rollups' `dim` column as a one-byte integer instead of its name (0 and 1
-- take no byte at all in a SQLite record). The names stay in visitor_days state and in the planner;
-- core/src/rollup/visits.rs (`dim_code`) maps them:
--   0 ''  every visit    1 src   2 br   3 os   4 dev   5 ctry   6 us   7 um   8 uc
--   9 cmp   10 en   11 ex   12 vp   13 pg
CREATE TABLE visit_hourly_v2 (
  tenant_id      TEXT NOT NULL,
  dim            INTEGER NOT NULL,
  hour           INTEGER NOT NULL,
  value          TEXT NOT NULL,
  domain         TEXT NOT NULL,
  visits         INTEGER NOT NULL,
  pageviews      INTEGER NOT NULL,
  bounces        INTEGER NOT NULL,
  duration       INTEGER NOT NULL,
  visitors       INTEGER NOT NULL,
  visitors_first INTEGER NOT NULL,
  visitors_last  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, dim, hour, value, domain)
) WITHOUT ROWID;
INSERT INTO visit_hourly_v2
SELECT tenant_id, CASE dim WHEN '' THEN 0 WHEN 'src' THEN 1 WHEN 'br' THEN 2 WHEN 'os' THEN 3
  WHEN 'dev' THEN 4 WHEN 'ctry' THEN 5 WHEN 'us' THEN 6 WHEN 'um' THEN 7 WHEN 'uc' THEN 8
  WHEN 'cmp' THEN 9 WHEN 'en' THEN 10 WHEN 'ex' THEN 11 WHEN 'vp' THEN 12 WHEN 'pg' THEN 13 END,
  hour, value, domain, visits, pageviews, bounces, duration, visitors, visitors_first, visitors_last
FROM visit_hourly;
DROP TABLE visit_hourly;
ALTER TABLE visit_hourly_v2 RENAME TO visit_hourly;

CREATE TABLE visit_daily_v2 (
  tenant_id TEXT NOT NULL,
  dim       INTEGER NOT NULL,
  day       INTEGER NOT NULL,
  value     TEXT NOT NULL,
  domain    TEXT NOT NULL,
  visits    INTEGER NOT NULL,
  pageviews INTEGER NOT NULL,
  bounces   INTEGER NOT NULL,
  duration  INTEGER NOT NULL,
  visitors  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, dim, day, value, domain)
) WITHOUT ROWID;
INSERT INTO visit_daily_v2
SELECT tenant_id, CASE dim WHEN '' THEN 0 WHEN 'src' THEN 1 WHEN 'br' THEN 2 WHEN 'os' THEN 3
  WHEN 'dev' THEN 4 WHEN 'ctry' THEN 5 WHEN 'us' THEN 6 WHEN 'um' THEN 7 WHEN 'uc' THEN 8
  WHEN 'cmp' THEN 9 WHEN 'en' THEN 10 WHEN 'ex' THEN 11 WHEN 'vp' THEN 12 WHEN 'pg' THEN 13 END,
  day, value, domain, visits, pageviews, bounces, duration, visitors
FROM visit_daily;
DROP TABLE visit_daily;
ALTER TABLE visit_daily_v2 RENAME TO visit_daily;
