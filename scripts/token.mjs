#!/usr/bin/env node
// Mints a Starling token: an HS256 JWT in Tinybird's shape, keyed with the UTF-8 bytes of SIGNING_KEY.
//
//   node scripts/token.mjs --tenant acme --kind tracker|read|settings [--days 365] [--key SECRET] [--domain d] [--rps N]
//
// Kinds, with the scopes the admin tokens API grants the same kind (core/src/mint.rs `scopes`):
//   tracker   DATASOURCES:APPEND on analytics_events (the tracker and the Events API);
//   read      PIPES:READ on * (the dashboard, the pipes, POST /v0/query and /v0/funnel);
//   settings  SETTINGS:READ and SETTINGS:WRITE on * (the tenant's own /v0/goals, /v0/segments, /v0/funnels).
//
// The key defaults to SIGNING_KEY from the environment or .dev.vars. Prints the token only. Tokens carry
// `iat`: after an erasure, a re-created tenant refuses every token issued before it, and every token
// without `iat` (which cannot show when it was issued).
import { createHmac } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';

export function signJwt(payload, key, header = { alg: 'HS256', typ: 'JWT' }) {
  const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
  const unsigned = `${b64(header)}.${b64(payload)}`;
  const sig = createHmac('sha256', Buffer.from(key, 'utf8')).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}

/** The kinds `mint` knows. */
export const KINDS = ['tracker', 'read', 'settings'];

export function mint({ tenant, kind, key, days = 365, domain, rps, resource, now = Math.floor(Date.now() / 1000) }) {
  const fixed_params = { tenant_id: tenant };
  if (domain) fixed_params.domain = domain;
  const scopes =
    kind === 'tracker'
      ? [{ type: 'DATASOURCES:APPEND', resource: resource ?? 'analytics_events', fixed_params }]
      : kind === 'settings'
        ? ['SETTINGS:READ', 'SETTINGS:WRITE'].map((type) => ({ type, resource: '*', fixed_params }))
        : [{ type: 'PIPES:READ', resource: resource ?? '*', fixed_params }];
  const payload = { workspace_id: 'starling', name: `${tenant}_${kind}`, iat: now, exp: now + Math.round(days * 86400), scopes };
  if (rps) payload.limits = { rps: Number(rps) };
  return signJwt(payload, key);
}

export function devVar(name, file = '.dev.vars') {
  if (process.env[name]) return process.env[name];
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}=`));
  return line?.slice(name.length + 1).replace(/^"|"$/g, '');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = Object.fromEntries(
    process.argv
      .slice(2)
      .join(' ')
      .split('--')
      .filter(Boolean)
      .map((a) => {
        const [k, ...v] = a.trim().split(/\s+/);
        return [k, v.join(' ') || 'true'];
      }),
  );
  const key = args.key ?? devVar('SIGNING_KEY');
  if (!args.tenant || !KINDS.includes(args.kind) || !key) {
    console.error(
      'usage: node scripts/token.mjs --tenant ID --kind tracker|read|settings [--days N] [--domain D] [--rps N] [--key SECRET]',
    );
    console.error(key ? '' : 'error: no SIGNING_KEY in the environment or .dev.vars: run scripts/dev.sh once, or pass --key');
    process.exit(2);
  }
  console.log(mint({ tenant: args.tenant, kind: args.kind, key, days: Number(args.days ?? 365), domain: args.domain, rps: args.rps }));
}
