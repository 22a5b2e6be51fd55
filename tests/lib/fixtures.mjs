// Test data shared by the e2e tests and scripts/seed.mjs.

/**
 * The `MF-CF-Blob` header value wrangler dev turns into `request.cf`: the request's country (and fixed
 * values for the rest), so tests and the seed choose each visitor's country.
 */
export const cfBlob = (country) =>
  JSON.stringify({
    country,
    region: '',
    city: '',
    colo: 'LHR',
    httpProtocol: 'HTTP/1.1',
    timezone: 'UTC',
    tlsCipher: '',
    tlsVersion: '',
    clientAcceptEncoding: '',
    asn: 64500,
    asOrganization: 'Example',
  });

/**
 * An enriched page hit as the queue consumer receives it (`EnrichedEvent` in core/src/event.rs), for
 * batches posted straight to `/v0/admin/batches`; `fields` override any member.
 */
export const enrichedHit = (fields) => ({
  ts: Date.now(),
  tenant_id: '',
  domain: '',
  action: 'page_hit',
  session_id: '',
  visitor_id: 'v1',
  pathname: '/',
  href: '',
  source: '',
  utm_source: '',
  utm_medium: '',
  utm_campaign: '',
  utm_term: '',
  utm_content: '',
  browser: 'firefox',
  os: 'linux',
  device: 'desktop',
  is_bot: false,
  country: 'DE',
  region: '',
  city: '',
  locale: 'de',
  payload: '{}',
  ...fields,
});
