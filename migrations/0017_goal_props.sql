-- Goals × custom properties (issue #14): per visit, goal and property value, the goal's events that
-- carried the value (the property on the completing event itself, as Plausible counts a goal's
-- properties), written whole from the visit's state by the queue consumer like `session_props`. It
-- answers an `event:goal` filter (or dimension) combined with `event:props:<key>` (dimension or filter)
-- and the property key list under a goal filter.
--
-- A goal's events and revenue as rollup cells need no schema change: they are `visit_daily` /
-- `visit_hourly` cells of dimension 16 ('ge', value = goal name U+001F currency) whose measure columns
-- hold the goal's events (`visits`), revenue in minor units (`pageviews`) and events with revenue
-- (`bounces`): core/src/rollup/visits.rs. They count what is processed after this change; replay older
-- days with scripts/rebuild.sh.
CREATE TABLE session_goal_props (
  tenant_id   TEXT NOT NULL,
  first_ts    INTEGER NOT NULL,
  session_key TEXT NOT NULL,
  goal        TEXT NOT NULL,
  prop        TEXT NOT NULL,  -- key U+001F value
  domain      TEXT NOT NULL,
  visitor_id  TEXT NOT NULL,
  pageviews   INTEGER NOT NULL,
  duration    INTEGER NOT NULL,
  events      INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, first_ts, session_key, goal, prop)
) WITHOUT ROWID;
