#!/usr/bin/env node
// Onboards a tenant end to end through the admin API: creates it (or keeps it when it exists), mints a
// tracker token and a read token, and prints the script tag and the dashboard link. Idempotent apart
// from minting new tokens on each run (old ones stay valid until revoked or expired).
//
//   node scripts/onboard.mjs --url URL --tenant ID [--name "Display name"] [--plan free|pro|enterprise]
//        [--origin https://site.example]... [--domain site.example] [--retention-days N] [--read-days N]
//        [--json]
//
// ADMIN_TOKEN comes from the environment or .dev.vars.
import { devVar } from './token.mjs';

function parseArgs(argv) {
  const out = { origin: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const value = argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
    if (key === 'origin') out.origin.push(value);
    else out[key] = value;
  }
  return out;
}

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

const args = parseArgs(process.argv.slice(2));
const admin = devVar('ADMIN_TOKEN');
if (!args.url || !args.tenant) {
  console.error(
    'usage: node scripts/onboard.mjs --url URL --tenant ID [--name NAME] [--plan free|pro|enterprise] [--origin ORIGIN]... [--domain D] [--retention-days N] [--read-days N] [--json]',
  );
  process.exit(2);
}
if (!admin) fail('no ADMIN_TOKEN in the environment or .dev.vars: run scripts/dev.sh once, or export ADMIN_TOKEN');

async function call(method, path, body) {
  let r;
  try {
    r = await fetch(args.url + path, {
      method,
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    fail(`cannot reach ${args.url} (${e.cause?.code ?? e.message}): is Starling running?`);
  }
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: text };
  }
  return { status: r.status, json };
}

const step = (m) => {
  if (!args.json) console.error(`==> ${m}`);
};
const tenant = {
  tenant_id: args.tenant,
  display_name: args.name ?? args.tenant,
  plan: args.plan ?? 'free',
  allowed_origins: args.origin,
};
if (args['retention-days']) tenant.retention_days = Number(args['retention-days']);

step(`creating tenant ${args.tenant} (${tenant.plan})`);
let created = await call('POST', '/v0/admin/tenants', tenant);
if (created.status === 409) {
  step(`tenant ${args.tenant} exists: keeping it`);
  created = await call('GET', `/v0/admin/tenants/${encodeURIComponent(args.tenant)}`);
}
if (created.status >= 300) fail(`creating the tenant failed (${created.status}): ${created.json.error}`);

const mintOne = async (kind, body) => {
  step(`minting a ${kind} token`);
  const r = await call('POST', `/v0/admin/tenants/${encodeURIComponent(args.tenant)}/tokens`, { kind, ...body });
  if (r.status !== 201) fail(`minting the ${kind} token failed (${r.status}): ${r.json.error}`);
  return r.json;
};
const domain = args.domain ? { domain: args.domain } : {};
const tracker = await mintOne('tracker', { name: `${args.tenant} tracker`, expires_in: 365 * 86400, ...domain });
const read = await mintOne('read', { name: `${args.tenant} dashboard`, expires_in: Number(args['read-days'] ?? 30) * 86400, ...domain });

const result = {
  tenant: created.json,
  tracker_token: tracker.token,
  tracker_token_id: tracker.token_id,
  read_token: read.token,
  read_token_id: read.token_id,
  script_tag: `<script defer src="${args.url}/t.js" data-host="${args.url}" data-token="${tracker.token}" data-tenant-id="${args.tenant}"${args.domain ? ` data-domain="${args.domain}"` : ''}></script>`,
  dashboard: `${args.url}/dashboard/#token=${read.token}`,
  // Framing is allowed for the tenant's allowed_origins only when the embed URL names the tenant.
  embed: `<script src="${args.url}/embed/starling-dashboard.js" defer></script>\n<starling-dashboard src="${args.url}/dashboard/?tenant=${encodeURIComponent(args.tenant)}" token="${read.token}"></starling-dashboard>`,
};
if (args.json) {
  console.log(JSON.stringify(result));
} else {
  console.log(`tenant:        ${args.tenant} (${created.json.plan}, ${created.json.isolation}, ${created.json.retention_days} days)`);
  console.log(`script tag:    ${result.script_tag}`);
  console.log(`dashboard:     ${result.dashboard}`);
  console.log(`embed (from an allowed origin):\n${result.embed}`);
  console.log(
    `revoke with:   curl -X DELETE -H "Authorization: Bearer $ADMIN_TOKEN" ${args.url}/v0/admin/tenants/${args.tenant}/tokens/<token_id>`,
  );
  console.error(`==> onboarded ${args.tenant}: tracker token ${tracker.token_id}, read token ${read.token_id}`);
}
