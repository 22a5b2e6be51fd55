-- Goals and conversions (issue #14): a tenant's goal definitions, and one row per (visit, goal) the
-- visit completed, the exact path for goal queries the rollups do not answer (events, revenue, a goal
-- with other filters). The rollups count a goal's visits under dimension 14 ('gl', value = goal name):
-- core/src/rollup/visits.rs. Both are written by the queue consumer from each visit's stored state.

CREATE TABLE goals (
  tenant_id TEXT NOT NULL,
  id        INTEGER NOT NULL,
  name      TEXT NOT NULL,
  kind      TEXT NOT NULL,     -- 'event' (custom event name) or 'page' (path pattern, * wildcards)
  pattern   TEXT NOT NULL,
  currency  TEXT,              -- ISO 4217 code of a revenue goal
  created   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
) WITHOUT ROWID;

-- Per visit and goal: the visit's measures (a visit without page hits has pageviews 0) and the goal's
-- events and revenue (integer minor units of `currency`; `paid` = events that carried revenue). Keyed
-- like `sessions` by the visit's start (first page hit, or first goal event of a visit without pages).
CREATE TABLE session_goals (
  tenant_id   TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  session_key TEXT NOT NULL,
  goal        TEXT NOT NULL,
  domain      TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  pageviews   INTEGER NOT NULL,
  duration    INTEGER NOT NULL,
  events      INTEGER NOT NULL,
  currency    TEXT NOT NULL,
  revenue     INTEGER NOT NULL,
  paid        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key, goal)
) WITHOUT ROWID;
