// The saved segments of the token's tenant (GET /v0/segments): a selector that applies one (its id
// goes to the pipes as segment=<id> and to /v0/query as ["is", "segment", [id]]), and "Save filters as
// segment" (POST /v0/segments), which works only for a token with a SETTINGS:WRITE scope.
import { plausibleToken } from './api.js';
import { queryBody } from './compare.js';
import { $, h } from './dom.js';
import { state } from './state.js';

/** The token's segments (`[{id, name, filters}]`), or [] when it may not list them. */
export async function listSegments(token, signal) {
  if (!plausibleToken(token)) return [];
  try {
    const r = await fetch('/v0/segments', {
      headers: { Authorization: `Bearer ${token}` },
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
    if (!r.ok) return [];
    const body = await r.json();
    return Array.isArray(body?.data) ? body.data : [];
  } catch {
    return [];
  }
}

/** The selected segment, if the tenant has it. */
export const selectedSegment = () => (state.segments ?? []).find((s) => String(s.id) === state.segment);

/** Fills the selector; a segment in the fragment that the tenant does not have is kept, marked. */
export function renderSegments() {
  const select = $('segment');
  const list = state.segments ?? [];
  const options = [h('option', { value: '', textContent: 'All visits' })];
  for (const s of list) options.push(h('option', { value: String(s.id), textContent: s.name }));
  if (state.segment && !list.some((s) => String(s.id) === state.segment))
    options.push(h('option', { value: state.segment, textContent: `Segment ${state.segment} (not found)` }));
  select.replaceChildren(...options);
  select.value = state.segment;
  select.disabled = list.length === 0 && !state.segment;
}

/**
 * Saves the current filters as a segment named `name`; resolves to the new segment or rejects with
 * the server's message (a dashboard read token gets a 403: saving needs SETTINGS:WRITE).
 */
export async function saveSegment(name, token) {
  const { filters } = queryBody({ from: '', to: '', tz: '', domain: state.domain, filters: state.filters, segment: state.segment });
  if (state.domain) filters.push(['is', 'event:hostname', [state.domain]]);
  const r = await fetch('/v0/segments', {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    // A selected segment's own filters are saved inline (a segment cannot name another).
    body: JSON.stringify({ name, filters: [...filters.filter((f) => f[1] !== 'segment'), ...(selectedSegment()?.filters ?? [])] }),
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body?.error || `could not save the segment (${r.status})`);
  return body;
}
