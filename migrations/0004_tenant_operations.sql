-- Tenant operations (issue #6): the tenant registry, minted tokens, tenant-held signing keys, usage
-- metering and the audit log of denied requests. Times are UTC unix seconds; days are 'YYYY-MM-DD'.
-- The same migrations run on every D1 database (the pool `DB` and each silo database): a silo database
-- simply leaves the control-plane tables (tenants, tokens, tenant_keys, audit_denials) empty.

-- One row per tenant created through the admin API. Erasure keeps a tombstone (status 'deleted',
-- generation bumped) so the tenant's tokens stay revoked; everything else of the tenant is deleted.
CREATE TABLE tenants (
  tenant_id       TEXT PRIMARY KEY,
  display_name    TEXT NOT NULL,
  plan            TEXT NOT NULL,                 -- free | pro | enterprise
  allowed_origins TEXT NOT NULL DEFAULT '[]',    -- JSON array of origins the tracker may send from
  isolation       TEXT NOT NULL DEFAULT 'pool',  -- pool | silo
  database        TEXT,                          -- D1 binding of a silo tenant (NULL: the pool `DB`)
  retention_days  INTEGER NOT NULL,
  generation      INTEGER NOT NULL DEFAULT 1,    -- part of every cache key; bumped on erasure
  status          TEXT NOT NULL DEFAULT 'active',-- active | deleted
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);

-- Tokens minted by the admin API (the JWT itself is never stored: it is returned once). token_id is the
-- JWT's `jti`; a revoked token is refused at the edge within the tenant cache's lifetime (seconds).
CREATE TABLE tokens (
  token_id   TEXT PRIMARY KEY,
  tenant_id  TEXT NOT NULL,
  name       TEXT NOT NULL,
  kind       TEXT NOT NULL,        -- tracker | read
  scopes     TEXT NOT NULL,        -- the JWT's `scopes` claim as JSON
  rps        INTEGER,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, created_at);

-- Ed25519 public keys a tenant's own backend signs read JWTs with (EdDSA, header `kid` = key_id).
CREATE TABLE tenant_keys (
  key_id     TEXT PRIMARY KEY,
  tenant_id  TEXT NOT NULL,
  public_key TEXT NOT NULL,        -- base64url of the 32-byte Ed25519 public key
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX tenant_keys_by_tenant ON tenant_keys (tenant_id);

-- Usage per tenant and UTC day, for usage-based billing. Event counters are written in the consumer's
-- transaction (exactly once per batch); `queries` by the query route after answering.
CREATE TABLE usage_daily (
  tenant_id          TEXT NOT NULL,
  day                TEXT NOT NULL,
  events_accepted    INTEGER NOT NULL DEFAULT 0,
  events_quarantined INTEGER NOT NULL DEFAULT 0,
  bot_hits           INTEGER NOT NULL DEFAULT 0,
  queries            INTEGER NOT NULL DEFAULT 0,
  bytes_archived     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

-- Denied requests, counted per minute and (tenant, token name, route, reason, status) so a flood of
-- denials stays a handful of rows. tenant_id/token_name are '' when unknown (no or unverifiable token).
-- Never holds a token, key, IP or user agent.
CREATE TABLE audit_denials (
  minute     INTEGER NOT NULL,
  tenant_id  TEXT NOT NULL,
  token_name TEXT NOT NULL,
  route      TEXT NOT NULL,
  reason     TEXT NOT NULL,
  status     INTEGER NOT NULL,
  count      INTEGER NOT NULL,
  PRIMARY KEY (minute, tenant_id, token_name, route, reason, status)
) WITHOUT ROWID;
CREATE INDEX audit_by_tenant ON audit_denials (tenant_id, minute);
