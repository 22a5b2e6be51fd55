-- Custom properties (issue #14): the known (key, value) pairs of each tenant, for the plan's caps on
-- distinct keys and values (core/src/props.rs), and one row per (visit, property value) the visit's
-- events carried, which answers every property query: properties have no rollup rows (free text up to
-- the caps would multiply the rollup rows and each visitor-day's state).

CREATE TABLE prop_values (
  tenant_id TEXT NOT NULL,
  key       TEXT NOT NULL,
  value     TEXT NOT NULL,
  PRIMARY KEY (tenant_id, key, value)
) WITHOUT ROWID;

-- The known keys with their number of known values, so a batch reads its tenant's keys (at most the
-- plan's cap) instead of counting every known value.
CREATE TABLE prop_keys (
  tenant_id TEXT NOT NULL,
  key       TEXT NOT NULL,
  n_values  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;

-- Keyed like `session_goals`: the visit's start, its measures, and the events with this value.
CREATE TABLE session_props (
  tenant_id   TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  session_key TEXT NOT NULL,
  prop        TEXT NOT NULL,  -- key U+001F value
  domain      TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  pageviews   INTEGER NOT NULL,
  duration    INTEGER NOT NULL,
  events      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key, prop)
) WITHOUT ROWID;
