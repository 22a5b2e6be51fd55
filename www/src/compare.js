// The comparison the KPI deltas and the chart's ghost line show: off, the previous period, the same
// dates a year earlier, or a custom range, optionally matched to the main period's weekdays.
//
// The plain previous period is what the pipes answer with include_previous_period. Every other choice
// asks POST /v0/query: the totals with include.comparisons (the server resolves the comparison dates,
// Plausible's rule for match_day_of_week, and answers them in meta.comparison_date_range), then that
// range by day or hour for the ghost line, paired with the main period's buckets by position. Both
// carry every filter of the view, the goal too: with a goal selected, the comparison is the goal's
// converting visits, as the current figures (the pipes' `goal`) are. /v0/query takes all six KPI
// metrics with an event:goal filter, with comparisons and by day or hour (tests/dashboard-compare).
import { ApiError, MESSAGES, plausibleToken, read } from './api.js';
import { isDate, spanDays, MAX_DAYS } from './dates.js';
import { queryFilters } from './filters.js';

/** The modes, as kept in the fragment (`compare=`) and shown in the selector. */
export const MODES = {
  previous_period: 'Previous period',
  year_over_year: 'Year over year',
  custom: 'Custom range…',
  off: 'No comparison',
};

/** Whether a comparison state is usable (a custom one needs a valid range). */
export function validCompare(c) {
  if (!c || !(c.mode in MODES)) return false;
  if (c.mode !== 'custom') return true;
  return isDate(c.from) && isDate(c.to) && c.from <= c.to && spanDays(c.from, c.to) <= MAX_DAYS;
}

/** Whether the pipes' own previous period answers this choice. */
export const pipesAnswer = (c) => c.mode === 'previous_period' && !c.matchDow;

/** The `include.comparisons` object of a choice (null when off). */
export function comparisonsBody(c) {
  if (c.mode === 'off') return null;
  const out = { mode: c.mode };
  if (c.mode === 'custom') out.date_range = [c.from, c.to];
  if (c.matchDow && c.mode !== 'custom') out.match_day_of_week = true;
  return out;
}

/** A /v0/query body for the dashboard's view (dates, zone, site, filters with the goal, and segment). */
export function queryBody(view, extra = {}) {
  const { from, to, tz, domain } = view;
  const body = {
    metrics: ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration'],
    date_range: [from, to],
    timezone: tz,
    filters: queryFilters(view),
    ...extra,
  };
  if (domain) body.site_id = domain;
  return body;
}

/** /v0/query metrics (in the order of `queryBody`) as the pipes' kpis keys. */
function asKpis(m) {
  return {
    visitors: m[0],
    visits: m[1],
    pageviews: m[2],
    views_per_visit: m[3],
    // The pipes give the bounce rate as a fraction and the duration as avg_session_sec.
    bounce_rate: (Number(m[4]) || 0) / 100,
    avg_session_sec: m[5],
  };
}

/** POST /v0/query; resolves to the parsed body or rejects with an ApiError (or the AbortError). */
export async function postQuery(body, token, signal) {
  if (!plausibleToken(token)) throw new ApiError('invalid', 401, MESSAGES.invalid);
  let r;
  try {
    r = await read('/v0/query', {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError('network', 0, MESSAGES.network);
  }
  let json = null;
  try {
    json = await r.json();
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
  }
  if (r.ok && json && Array.isArray(json.results)) return json;
  const detail = json && typeof json.error === 'string' ? json.error : '';
  if (r.status === 429)
    throw new ApiError('rate', 429, MESSAGES.rate, Math.min(60, Math.max(1, Number(r.headers.get('Retry-After')) || 2)));
  if (r.status === 400) throw new ApiError('bad', 400, `${MESSAGES.bad}${detail ? `: ${detail}` : '.'}`);
  if (r.status === 401) throw new ApiError('invalid', 401, MESSAGES.invalid);
  if (r.status === 403) throw new ApiError('forbidden', 403, MESSAGES.forbidden);
  throw new ApiError('server', r.status, MESSAGES.server);
}

/**
 * The comparison figures for a view: `{ range: [from, to], totals: {kpis keys}, series: [kpis rows by
 * position] }`, or null when off. `series` holds one object per comparison bucket, oldest first.
 */
export async function loadComparison(view, c, token, signal) {
  const include = comparisonsBody(c);
  if (!include) return null;
  const totals = await postQuery(queryBody(view, { include: { comparisons: include } }), token, signal);
  const range = totals.meta?.comparison_date_range;
  const row = totals.results[0];
  const prev = row?.comparison ? asKpis(row.comparison.metrics) : asKpis([0, 0, 0, 0, 0, 0]);
  if (!Array.isArray(range)) return { range: null, totals: prev, series: [] };
  const hourly = view.from === view.to;
  const dim = hourly ? 'time:hour' : 'time:day';
  const series = await postQuery(
    queryBody({ ...view, from: range[0], to: range[1] }, { dimensions: [dim], include: { time_labels: true } }),
    token,
    signal,
  );
  const byLabel = new Map(series.results.map((r) => [r.dimensions[0], asKpis(r.metrics)]));
  const labels = series.meta?.time_labels ?? [];
  // An hourly comparison of a range of more than a day (custom) has more buckets: keep the first day's.
  return { range, totals: prev, series: labels.map((l) => ({ date: l, ...(byLabel.get(l) ?? asKpis([0, 0, 0, 0, 0, 0])) })) };
}

/** Puts the comparison's figures into kpis rows as `previous_*`, pairing buckets by position. */
export function withPrevious(rows, cmp) {
  return rows.map((r, i) => {
    const out = {};
    for (const [k, v] of Object.entries(r)) if (!k.startsWith('previous_')) out[k] = v;
    const p = cmp?.series[i];
    if (p) for (const [k, v] of Object.entries(p)) if (k !== 'date') out[`previous_${k}`] = v;
    return out;
  });
}

/** A kpis_summary row with the comparison's totals as `previous_*` (none when off). */
export function summaryWithPrevious(row = {}, cmp) {
  const out = {};
  for (const [k, v] of Object.entries(row)) if (!k.startsWith('previous_')) out[k] = v;
  if (cmp) for (const [k, v] of Object.entries(cmp.totals)) out[`previous_${k}`] = v;
  return out;
}
