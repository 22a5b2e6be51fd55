// The events the ingest benchmarks send: flock.js page hits with a string payload, 50 pages and 5,000
// sessions, one Chrome user agent (bench/ingest.mjs, bench/worker-profile.mjs).
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** The `i`th page hit of `tenant`, stamped now. */
export function line(tenant, i) {
  const payload = JSON.stringify({
    'user-agent': UA,
    locale: 'en-US',
    referrer: 'https://www.google.com/',
    pathname: `/p/${i % 50}`,
    href: `https://bench.example/p/${i % 50}?utm_source=b`,
  });
  return JSON.stringify({
    timestamp: new Date().toISOString(),
    action: 'page_hit',
    version: '1',
    session_id: `s-${i % 5000}`,
    tenant_id: tenant,
    domain: 'bench.example',
    payload,
  });
}

/** `n` page hits of `tenant` as one NDJSON body. */
export const ndjson = (tenant, n) => Array.from({ length: n }, (_, i) => line(tenant, i)).join('\n');
