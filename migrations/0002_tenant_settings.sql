-- Per-tenant white-label settings for the dashboard (issue #5): written by the admin API
-- (PUT /v0/admin/tenants/{tenant_id}/settings), read with a tenant's read token (GET /v0/tenant.json).
-- NULL means "not set": the dashboard keeps its own default. updated_at is UTC unix seconds.
CREATE TABLE tenant_settings (
  tenant_id     TEXT PRIMARY KEY,
  display_name  TEXT,
  logo_url      TEXT,
  primary_color TEXT,
  theme         TEXT,
  hide_branding INTEGER NOT NULL DEFAULT 0,
  updated_at    INTEGER NOT NULL
);
