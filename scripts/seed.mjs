#!/usr/bin/env node
// Seeds a tenant with realistic traffic through the real ingest API (POST /v0/events), as flock.js would
// send it: one NDJSON request per visit, with the visitor's IP, user agent and country set the way the
// edge sees them locally (CF-Connecting-IP, MF-CF-Blob).
//
//   node scripts/seed.mjs --url http://127.0.0.1:8787 --token <tracker token> [--tenant demo] [--days 7] [--visits-per-day 120] [--seed 1]
import { randomUUID } from 'node:crypto';
import { cfBlob } from '../tests/lib/fixtures.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .join(' ')
    .split('--')
    .filter(Boolean)
    .map((a) => {
      const [k, ...v] = a.trim().split(/\s+/);
      return [k, v.join(' ')];
    }),
);
if (!args.url || !args.token) {
  console.error('usage: node scripts/seed.mjs --url URL --token TRACKER_TOKEN [--tenant demo] [--days 7] [--visits-per-day 120]');
  process.exit(2);
}
const days = Number(args.days ?? 7);
const perDay = Number(args['visits-per-day'] ?? 120);
let state = Number(args.seed ?? 1) >>> 0 || 1;
const rand = () => {
  state = (state * 1664525 + 1013904223) >>> 0;
  return state / 2 ** 32;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const weighted = (xs) => {
  const t = xs.reduce((s, [, w]) => s + w, 0);
  let r = rand() * t;
  for (const [x, w] of xs) {
    r -= w;
    if (r < 0) return x;
  }
  return xs[0][0];
};

const DOMAINS = [
  ['demo.example.com', 4],
  ['shop.example.com', 1],
];
const PAGES = [
  ['/', 10],
  ['/pricing', 5],
  ['/docs', 4],
  ['/docs/getting-started', 3],
  ['/blog', 3],
  ['/blog/edge-analytics', 2],
  ['/about', 1],
  ['/signup', 2],
];
const SOURCES = [
  ['', 5],
  ['https://www.google.com/', 6],
  ['https://news.ycombinator.com/', 2],
  ['https://t.co/x', 1],
  ['https://duckduckgo.com/', 1],
  ['https://github.com/starling', 1],
];
const CAMPAIGNS = [
  [null, 8],
  [{ source: 'newsletter', medium: 'email', campaign: 'november' }, 1],
  [{ source: 'twitter', medium: 'social', campaign: 'launch' }, 1],
];
const COUNTRIES = [
  ['US', 6],
  ['DE', 3],
  ['GB', 2],
  ['FR', 2],
  ['ES', 1],
  ['IN', 2],
  ['BR', 1],
  ['JP', 1],
];
const UAS = [
  ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36', 6],
  ['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15', 3],
  [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
    3,
  ],
  ['Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36', 3],
  ['Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0', 1],
  ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0', 2],
  ['Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1', 1],
  ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 1],
];

const now = Date.now();
const visits = [];
for (let d = days - 1; d >= 0; d--) {
  const n = Math.round(perDay * (0.8 + 0.4 * rand()));
  for (let i = 0; i < n; i++) {
    const start = now - d * 86400_000 - Math.floor(rand() * (d === 0 ? 12 * 3600_000 : 86400_000));
    visits.push(start);
  }
}
// A few visits in the last minutes, so the live view has something to show.
for (let i = 0; i < 6; i++) visits.push(now - Math.floor(rand() * 240_000) - 60_000);

let sent = 0,
  accepted = 0,
  quarantined = 0,
  failed = 0;
const t0 = Date.now();
for (const start of visits) {
  const domain = weighted(DOMAINS);
  const ua = weighted(UAS);
  const country = weighted(COUNTRIES);
  const ip = `198.51.100.${1 + Math.floor(rand() * 250)}`;
  const referrer = weighted(SOURCES);
  const utm = weighted(CAMPAIGNS);
  const session = randomUUID();
  const hits = 1 + Math.floor(rand() ** 2 * 5);
  const lines = [];
  let ts = start;
  let prev = referrer;
  for (let h = 0; h < hits; h++) {
    const path = h === 0 && rand() < 0.5 ? '/' : weighted(PAGES);
    const q = h === 0 && utm ? `?utm_source=${utm.source}&utm_medium=${utm.medium}&utm_campaign=${utm.campaign}` : '';
    const href = `https://${domain}${path}${q}`;
    const payload = { 'user-agent': ua, locale: pick(['en-US', 'en-GB', 'de-DE', 'fr-FR']), referrer: prev, pathname: path, href };
    lines.push(
      JSON.stringify({
        timestamp: new Date(Math.min(ts, now)).toISOString(),
        action: 'page_hit',
        version: '1',
        session_id: session,
        tenant_id: 'demo',
        domain,
        payload: JSON.stringify(payload),
      }),
    );
    if (rand() < 0.15)
      lines.push(
        JSON.stringify({
          timestamp: new Date(Math.min(ts + 2000, now)).toISOString(),
          action: pick(['signup_click', 'add_to_cart', 'download']),
          version: '1',
          session_id: session,
          tenant_id: 'demo',
          domain,
          payload: JSON.stringify({ plan: pick(['free', 'pro']) }),
        }),
      );
    prev = href;
    ts += Math.floor(10_000 + rand() * 180_000);
  }
  const r = await fetch(`${args.url}/v0/events?name=analytics_events&token=${encodeURIComponent(args.token)}`, {
    method: 'POST',
    body: lines.join('\n'),
    headers: { 'Content-Type': 'text/plain', 'CF-Connecting-IP': ip, 'User-Agent': ua, 'MF-CF-Blob': cfBlob(country) },
  });
  sent++;
  if (r.ok) {
    const j = await r.json();
    accepted += j.successful_rows;
    quarantined += j.quarantined_rows;
  } else {
    failed++;
    if (failed <= 3) console.error(`request failed: ${r.status} ${await r.text()}`);
  }
  if (sent % 100 === 0) process.stderr.write(`  seeded ${sent}/${visits.length} visits\n`);
}
console.log(
  `seed: ${visits.length} visits, ${accepted} events accepted, ${quarantined} quarantined, ${failed} failed requests in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
);
process.exit(failed ? 1 : 0);
