// The time series: uPlot, the current period as a filled line and the chosen comparison (compare.js)
// as a dashed ghost line on the same x positions. Colours come from the CSS custom properties of the theme.
import uPlot from 'uplot';
import { labelSeconds } from './format.js';

const H = 3600;
const D = 24 * H;
/** Tick steps: whole hours for a day, whole days (then months, years) for longer ranges. */
const HOUR_INCRS = [H, 2 * H, 3 * H, 4 * H, 6 * H, 12 * H];
const DAY_INCRS = [D, 2 * D, 7 * D, 15 * D, 30 * D, 60 * D, 90 * D, 180 * D, 365 * D];

const css = (el, name) => getComputedStyle(el).getPropertyValue(name).trim();

export class Chart {
  constructor(el) {
    this.el = el;
    this.plot = null;
    this.last = null;
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(el);
  }

  height() {
    return this.el.clientWidth < 500 ? 200 : 260;
  }

  resize() {
    if (this.plot && this.el.clientWidth > 0) {
      const w = this.el.clientWidth;
      if (w !== this.plot.width) this.plot.setSize({ width: w, height: this.height() });
    }
  }

  /**
   * rows: kpis rows (with previous_*); metric: key; fmt: value formatter; hourly: x labels are hours;
   * ghost: the comparison's label, or null to draw no ghost line.
   * Rebuilt on every call (cheap at these sizes) so that theme colours are picked up.
   */
  render(rows, metric, fmt, hourly, label, ghostLabel = 'Previous period') {
    this.last = [rows, metric, fmt, hourly, label, ghostLabel];
    const x = rows.map((r) => labelSeconds(r.date));
    const cur = rows.map((r) => Number(r[metric]) || 0);
    const prev = rows.map((r) => Number(r[`previous_${metric}`]) || 0);
    const accent = css(this.el, '--accent') || '#2563eb';
    const muted = css(this.el, '--muted') || '#6b7280';
    const grid = css(this.el, '--grid') || '#e5e7eb';
    const ghost = css(this.el, '--ghost') || '#9ca3af';
    const fill = alpha(accent, 0.14);
    const font = `12px ${css(document.body, 'font-family') || 'system-ui, sans-serif'}`;
    const axis = { stroke: muted, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: Math.max(this.el.clientWidth, 200),
      height: this.height(),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { show: true, live: true },
      cursor: { points: { size: 7 }, drag: { x: false, y: false } },
      series: [
        { label: hourly ? 'Hour' : 'Day', value: (_u, v) => (v == null ? '–' : fmtX(v, hourly)) },
        {
          label: ghostLabel ?? 'No comparison',
          show: ghostLabel !== null,
          stroke: ghost,
          width: 1.5,
          dash: [5, 4],
          points: { show: false },
          value: (_u, v) => (v == null ? '–' : fmt(v)),
        },
        {
          label,
          stroke: accent,
          width: 2,
          fill,
          points: { show: rows.length <= 31, size: 4, fill: accent },
          value: (_u, v) => (v == null ? '–' : fmt(v)),
        },
      ],
      axes: [
        { ...axis, space: hourly ? 50 : 64, incrs: hourly ? HOUR_INCRS : DAY_INCRS },
        { ...axis, size: 56, values: (_u, vals) => vals.map((v) => fmt(v)) },
      ],
    };
    if (this.plot) this.plot.destroy();
    this.el.replaceChildren();
    this.plot = new uPlot(opts, [x, prev, cur], this.el);
  }

  /** Rebuilds with the last data (after a theme change). */
  refresh() {
    if (this.last) this.render(...this.last);
  }
}

function fmtX(sec, hourly) {
  const d = new Date(sec * 1000);
  return new Intl.DateTimeFormat(
    undefined,
    hourly ? { hour: 'numeric', minute: '2-digit', timeZone: 'UTC' } : { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' },
  ).format(d);
}

/** `#rrggbb` with an alpha, for the area under the line. */
function alpha(hex, a) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return 'rgba(37, 99, 235, 0.14)';
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}
