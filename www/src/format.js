// Number and date formatting for the viewer's locale.

const locale = () => (typeof navigator !== 'undefined' && navigator.language) || 'en';
const nf0 = new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 });
const nf2 = new Intl.NumberFormat(locale(), { maximumFractionDigits: 2, minimumFractionDigits: 0 });
const pf = new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat(locale(), { notation: 'compact', maximumFractionDigits: 1 });

export const int = (v) => nf0.format(Number(v) || 0);
export const dec = (v) => nf2.format(Number(v) || 0);
export const percent = (v) => pf.format(Number(v) || 0);
export const short = (v) => (Math.abs(v) >= 10_000 ? compact.format(v) : nf2.format(v));

/** Seconds as "1 h 2 min", "3 min 4 s" or "12 s". */
export function duration(sec) {
  const s = Math.round(Number(sec) || 0);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A YYYY-MM-DD date as "Mon, 13 Aug 2025"-ish in the viewer's locale (the date is not shifted). */
export function day(iso, opts = { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' }) {
  const [y, m, d] = iso.slice(0, 10).split('-').map(Number);
  return new Intl.DateTimeFormat(locale(), { ...opts, timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, d)));
}

/** A server bucket label ('YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', local wall time) as UTC seconds of that wall time. */
export function labelSeconds(label) {
  const [date, time = '00:00:00'] = label.split(' ');
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm, ss] = time.split(':').map(Number);
  return Date.UTC(y, m - 1, d, hh, mm, ss) / 1000;
}

/** A bucket label for the data table. */
export function bucket(label, hourly) {
  if (!hourly) return day(label);
  const t = new Date(labelSeconds(label) * 1000);
  return new Intl.DateTimeFormat(locale(), { hour: 'numeric', minute: '2-digit', timeZone: 'UTC' }).format(t);
}

let regions;
/** A country code as its name in the viewer's language ("Germany"); '' as "Unknown". */
export function country(code) {
  if (!code) return 'Unknown';
  const c = String(code).toUpperCase();
  let name = c;
  try {
    regions ??= new Intl.DisplayNames([locale(), 'en'], { type: 'region' });
    name = regions.of(c) || c;
  } catch {
    name = c;
  }
  return name;
}
