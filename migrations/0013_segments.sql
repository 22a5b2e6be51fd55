-- Saved segments (issue #14, item 7): named filter sets per tenant, in the POST /v0/query filter shape.
-- Written through the admin API and the tenant's own settings-write token; read by (tenant_id, id) only.
-- id counts per tenant and is never reused: a deleted segment keeps its row as a tombstone (deleted set,
-- name and filters cleared), so an old link naming it answers "no such segment", never another one's data.
-- created/deleted are UTC unix seconds.
CREATE TABLE segments (
  tenant_id TEXT NOT NULL,
  id        INTEGER NOT NULL,
  name      TEXT NOT NULL,
  filters   TEXT NOT NULL,
  created   INTEGER NOT NULL,
  deleted   INTEGER,
  PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
