// The KPI cards (each with its change from the previous period) and the chart of the selected one,
// with the chart's data table for screen readers.
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { state } from './state.js';
import { showDelta } from './delta.js';

/** The figures: key in kpis/kpis_summary rows, label, formatter, whether a fall is good news. */
export const KPIS = [
  { key: 'visitors', label: 'Unique visitors', fmt: fmt.int },
  { key: 'visits', label: 'Visits', fmt: fmt.int },
  { key: 'pageviews', label: 'Pageviews', fmt: fmt.int },
  { key: 'views_per_visit', label: 'Views per visit', fmt: fmt.dec },
  { key: 'bounce_rate', label: 'Bounce rate', fmt: fmt.percent, lowerIsBetter: true },
  { key: 'avg_session_sec', label: 'Visit duration', fmt: fmt.duration },
];

/** Makes the cards; a click selects the card's metric for the chart, then calls `onSelect` and redraws. */
export function buildKpis(onSelect) {
  $('kpis').replaceChildren(
    ...KPIS.map((k) =>
      h(
        'button',
        {
          type: 'button',
          class: 'kpi',
          'aria-pressed': String(k.key === state.metric),
          dataset: { metric: k.key },
          title: `Show ${k.label.toLowerCase()} in the chart`,
        },
        h('span', { class: 'kpi-label', textContent: k.label }),
        h('strong', { class: 'kpi-value', id: `kpi-${k.key}`, dataset: { testid: `kpi-${k.key}` }, textContent: '–' }),
        h('span', { class: 'kpi-delta', id: `delta-${k.key}`, dataset: { testid: `delta-${k.key}` } }),
      ),
    ),
  );
  $('kpis').addEventListener('click', (e) => {
    const b = e.target.closest('button.kpi');
    if (!b) return;
    state.metric = b.dataset.metric;
    for (const x of $('kpis').querySelectorAll('button.kpi')) x.setAttribute('aria-pressed', String(x === b));
    onSelect();
    renderSeries();
  });
}

export function renderKpis(row = {}) {
  for (const k of KPIS) {
    const cur = Number(row[k.key]) || 0;
    const prev = Number(row[`previous_${k.key}`]) || 0;
    const v = $(`kpi-${k.key}`);
    v.textContent = k.fmt(cur);
    v.dataset.value = String(cur);
    showDelta($(`delta-${k.key}`), { cur, prev, fmt: k.fmt, lowerIsBetter: k.lowerIsBetter });
  }
  const empty = !(Number(row.visits) > 0);
  $('main').classList.toggle('empty', empty);
}

export function renderSeries() {
  const rows = state.series || [];
  const k = KPIS.find((x) => x.key === state.metric) || KPIS[0];
  $('chart-title').textContent = `${k.label} ${state.hourly ? 'by hour' : 'by day'}`;
  const ghost = { previous_period: 'Previous period', year_over_year: 'Year before', custom: 'Comparison' }[state.compare?.mode] ?? null;
  state.chart.render(rows, k.key, k.fmt, state.hourly, k.label, ghost);
  const body = $('chart-table').tBodies[0];
  body.replaceChildren(
    ...rows.map((r) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row', textContent: fmt.bucket(r.date, state.hourly) }),
        h('td', { class: 'num', textContent: k.fmt(r[k.key]) }),
        h('td', { class: 'num', textContent: ghost ? k.fmt(r[`previous_${k.key}`]) : '–' }),
      ),
    ),
  );
  $('chart-table').tHead.rows[0].cells[0].textContent = state.hourly ? 'Hour' : 'Date';
  $('chart-table').tHead.rows[0].cells[2].textContent = ghost ?? 'No comparison';
}
