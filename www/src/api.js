// Calls the worker's Tinybird-compatible endpoints on the dashboard's own origin. The token travels
// only in the Authorization header (never in a URL, never to another origin).

/** A failed call, with what to tell the viewer. */
export class ApiError extends Error {
  constructor(kind, status, message, retryAfter = 0) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** The viewer-facing sentence for each kind of failure. */
export const MESSAGES = {
  missing: 'This dashboard needs a link with a token. Open the link your administrator gave you (it ends in #token=…).',
  invalid: "This link's token is invalid. Ask your administrator for a new dashboard link.",
  expired: 'This dashboard link has expired — ask your administrator for a new one.',
  notyet: "This dashboard link is not valid yet. Check your computer's clock, or ask your administrator.",
  forbidden: 'This link does not give access to the dashboard. Ask your administrator for a dashboard (read) link.',
  rate: 'Too many requests right now. Wait a few seconds and try again.',
  bad: 'The dashboard asked for something the server refused',
  server: 'The analytics server could not answer right now. Try again in a moment.',
  network: 'Could not reach the analytics server. Check your internet connection and try again.',
};

/** Errors that no retry can fix: stop loading and say so. */
export const FATAL = new Set(['missing', 'invalid', 'expired', 'notyet', 'forbidden']);

/**
 * `fetch` for the dashboard's reads (pipes, /v0/query, funnels): a 502, 503 or 504, or a network error,
 * is a refusal on the way (the edge answered nothing else), so the same request is made again after
 * 0.5 s and then 1.5 s before the caller sees it. An abort (the view changed) is never retried.
 */
export async function read(url, init) {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(url, init);
      if (attempt > 1 || r.status < 502 || r.status > 504) return r;
    } catch (e) {
      if (attempt > 1 || e?.name === 'AbortError') throw e;
    }
    await new Promise((done) => setTimeout(done, attempt ? 1500 : 500));
  }
}

/** Looks like a JWT (three base64url parts) of a sane length. */
export function plausibleToken(t) {
  return typeof t === 'string' && t.length < 8192 && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t);
}

/**
 * GET /v0/pipes/<name>.json with `params` (empty values are left out). Resolves to the parsed
 * `{meta, data, rows, statistics}`; rejects with an ApiError (or the AbortError of `signal`).
 */
export async function pipe(name, params, token, signal) {
  if (!plausibleToken(token)) throw new ApiError('invalid', 401, MESSAGES.invalid);
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  let r;
  try {
    r = await read(`/v0/pipes/${encodeURIComponent(name)}.json?${q}`, {
      headers: { Authorization: `Bearer ${token}` },
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError('network', 0, MESSAGES.network);
  }
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
  }
  if (r.ok && body && Array.isArray(body.data)) return body;
  const detail = body && typeof body.error === 'string' ? body.error : '';
  switch (r.status) {
    case 401:
      throw new ApiError('invalid', 401, MESSAGES.invalid);
    case 403:
      if (/^token expired/i.test(detail)) throw new ApiError('expired', 403, MESSAGES.expired);
      if (/not yet valid/i.test(detail)) throw new ApiError('notyet', 403, MESSAGES.notyet);
      throw new ApiError('forbidden', 403, MESSAGES.forbidden);
    case 429: {
      const after = Math.min(60, Math.max(1, Number(r.headers.get('Retry-After')) || 2));
      throw new ApiError('rate', 429, MESSAGES.rate, after);
    }
    case 400:
      throw new ApiError('bad', 400, `${MESSAGES.bad}${detail ? `: ${detail}` : '.'}`);
    default:
      throw new ApiError('server', r.status, MESSAGES.server);
  }
}

/**
 * GET /v0/tenant.json: the token's tenant's white-label settings (`display_name`, `logo_url`,
 * `primary_color`, `theme`, `hide_branding`). Resolves to the object, or `null` on any failure: the
 * dashboard then keeps its defaults, and the pipes report what is wrong with the token.
 */
export async function tenantSettings(token, signal) {
  if (!plausibleToken(token)) return null;
  try {
    const r = await fetch('/v0/tenant.json', {
      headers: { Authorization: `Bearer ${token}` },
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
    if (!r.ok) return null;
    const body = await r.json();
    return body && typeof body === 'object' && !Array.isArray(body) ? body : null;
  } catch {
    return null;
  }
}
