// Tenant white-label settings over HTTP: the admin API validates and stores them, and /v0/tenant.json
// answers the read token's own tenant only, whatever the request says.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './lib/worker.mjs';

let w;
before(async () => {
  w = await startWorker({ fastQueues: true, shared: true });
});
after(async () => {
  await w?.stop();
});

const put = (tenant, body, auth) =>
  w.fetch(`/v0/admin/tenants/${tenant}/settings`, {
    method: 'PUT',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: auth ?? `Bearer ${w.adminToken}` },
  });
const tenantJson = async (query, token) => {
  const r = await w.fetch(`/v0/tenant.json${query}`, token ? { headers: { Authorization: `Bearer ${token}` } } : undefined);
  return { status: r.status, json: JSON.parse(r.body), headers: r.headers };
};

test("tenant.json answers the token's tenant only, never a parameter's", async () => {
  assert.equal((await put('acme', { display_name: 'Acme Analytics', primary_color: '#0a7d32', hide_branding: true })).status, 200);
  assert.equal((await put('globex', { display_name: 'Globex', theme: 'dark', logo_url: 'https://globex.example/logo.png' })).status, 200);
  const acme = w.token('acme', 'read');

  const viaQuery = await tenantJson(`?tenant_id=globex&token=${acme}`);
  assert.equal(viaQuery.status, 200);
  assert.equal(viaQuery.json.tenant_id, 'acme');
  assert.equal(viaQuery.json.display_name, 'Acme Analytics');
  assert.equal(viaQuery.headers.get('cache-control'), 'private, max-age=60');
  const viaHeader = await tenantJson('?tenant_id=globex', acme);
  assert.deepEqual(viaHeader.json, {
    tenant_id: 'acme',
    display_name: 'Acme Analytics',
    logo_url: null,
    primary_color: '#0a7d32',
    theme: null,
    hide_branding: true,
  });

  const globex = await tenantJson('', w.token('globex', 'read'));
  assert.deepEqual(globex.json, {
    tenant_id: 'globex',
    display_name: 'Globex',
    logo_url: 'https://globex.example/logo.png',
    primary_color: null,
    theme: 'dark',
    hide_branding: false,
  });
  // A token limited to some pipes (a public live counter) reads no settings (issue #16).
  assert.equal((await tenantJson('', w.token('globex', 'read', { resource: 'kpis' }))).status, 403);

  const unset = await tenantJson('', w.token('initech', 'read'));
  assert.deepEqual(unset.json, {
    tenant_id: 'initech',
    display_name: null,
    logo_url: null,
    primary_color: null,
    theme: null,
    hide_branding: false,
  });

  assert.equal((await tenantJson('?tenant_id=acme')).status, 401, 'no token');
  assert.equal((await tenantJson('', w.token('acme', 'tracker'))).status, 403, 'a tracker token reads nothing');
  assert.equal((await w.fetch('/v0/tenant.json', { method: 'POST', headers: { Authorization: `Bearer ${acme}` } })).status, 405);
});

test('the admin API validates settings and names the bad field', async () => {
  const cases = [
    [{ logo_url: 'javascript:alert(1)' }, /logo_url/],
    [{ primary_color: 'red;}' }, /primary_color/],
    [{ display_name: 'x'.repeat(81) }, /display_name/],
    [{ theme: 'blue' }, /theme/],
    [{ hide_branding: 'yes' }, /hide_branding/],
    [{ display_name: 'A', tenant_id: 'globex' }, /unknown field 'tenant_id'/],
    ['not json', /JSON/],
  ];
  for (const [body, re] of cases) {
    const r = await put('acme', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body}`);
    assert.match(JSON.parse(r.body).error, re);
  }
  assert.equal((await put('..bad', { display_name: 'A' })).status, 400, 'tenant id rules');
  assert.equal((await put('acme', { display_name: 'A' }, 'Bearer wrong')).status, 403);
  const noAuth = await w.fetch('/v0/admin/tenants/acme/settings', { method: 'PUT', body: '{}' });
  assert.equal(noAuth.status, 401);
  const get = await w.fetch('/v0/admin/tenants/acme/settings', { headers: { Authorization: `Bearer ${w.adminToken}` } });
  assert.equal(get.status, 405);
  // A rejected PUT changed nothing; a PUT replaces every field.
  assert.equal((await put('acme', { theme: 'light' })).status, 200);
  const now = await tenantJson('', w.token('acme', 'read'));
  assert.deepEqual(now.json, {
    tenant_id: 'acme',
    display_name: null,
    logo_url: null,
    primary_color: null,
    theme: 'light',
    hide_branding: false,
  });
});
