-- Funnels (issue #14): a tenant's saved funnel definitions (2 to 8 ordered steps, each a goal or a page
-- path pattern) and, per visit, the funnel steps it reached, the exact path for funnels with filters
-- the rollups do not answer. The rollups count a visit under dimension 15 ('fn', value = funnel id ':'
-- step) for every step up to the furthest it reached (cumulative): core/src/rollup/visits.rs.

-- A deleted funnel keeps its row (deleted = 1) so its id is never reused: open visits may still hold
-- step hits tagged with it, which must not count for a new funnel.
CREATE TABLE funnels (
  tenant_id TEXT NOT NULL,
  id        INTEGER NOT NULL,
  name      TEXT NOT NULL,
  steps     TEXT NOT NULL,     -- JSON: [{"goal": name} | {"page": pattern}, ...]
  created   INTEGER NOT NULL,
  deleted   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

-- One row per (page visit, funnel step reached), keyed like `session_goals` by the visit's start;
-- `step` = funnel id ':' step number (1-based), every step up to the furthest.
CREATE TABLE session_funnels (
  tenant_id   TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  session_key TEXT NOT NULL,
  step        TEXT NOT NULL,
  domain      TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  pageviews   INTEGER NOT NULL,
  duration    INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key, step)
) WITHOUT ROWID;
