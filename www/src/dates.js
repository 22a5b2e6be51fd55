// Local calendar dates as 'YYYY-MM-DD' strings, in the viewer's time zone; arithmetic in UTC so that
// daylight-saving changes cannot shift a day.

const TZ_SYNTAX = /^[A-Za-z][A-Za-z0-9/_+-]{0,63}$/;

/** The viewer's IANA time zone, as the server accepts it; UTC when unknown. */
export function viewerTimeZone() {
  let tz = '';
  try {
    tz = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    tz = '';
  }
  return TZ_SYNTAX.test(tz) ? tz : 'UTC';
}

/** Today's date in `tz`. */
export function todayIn(tz, now = new Date()) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(now))
    parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day}`;
}

export const isDate = (s) =>
  typeof s === 'string' &&
  /^\d{4}-\d{2}-\d{2}$/.test(s) &&
  !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) &&
  new Date(`${s}T00:00:00Z`).toISOString().startsWith(s);

export function addDays(iso, n) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function addMonths(iso, n) {
  const [y, m, d] = iso.split('-').map(Number);
  const last = new Date(Date.UTC(y, m - 1 + n + 1, 0)).getUTCDate();
  return new Date(Date.UTC(y, m - 1 + n, Math.min(d, last))).toISOString().slice(0, 10);
}

/** Days from `a` to `b` inclusive. */
export const spanDays = (a, b) => Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000) + 1;

/** The server's longest range. */
export const MAX_DAYS = 400;

export const RANGES = ['today', 'yesterday', '7d', '30d', '12m', 'custom'];

/** `{from, to}` of a named range ending today (custom: the given dates, checked). */
export function rangeDates(range, today, custom = {}) {
  switch (range) {
    case 'today':
      return { from: today, to: today };
    case 'yesterday': {
      const y = addDays(today, -1);
      return { from: y, to: y };
    }
    case '30d':
      return { from: addDays(today, -29), to: today };
    case '12m':
      return { from: addDays(addMonths(today, -12), 1), to: today };
    case 'custom':
      if (isDate(custom.from) && isDate(custom.to) && custom.from <= custom.to && spanDays(custom.from, custom.to) <= MAX_DAYS) {
        return { from: custom.from, to: custom.to };
      }
      return { from: addDays(today, -6), to: today };
    default:
      return { from: addDays(today, -6), to: today };
  }
}

/** The period before `from..to`, of the same length (as the server's include_previous_period). */
export function previousPeriod(from, to) {
  const n = spanDays(from, to);
  return { from: addDays(from, -n), to: addDays(from, -1) };
}
