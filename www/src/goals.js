// The Goals table: per goal, the visitors who completed it, its goal events, its conversion
// rate and its revenue, from POST /v0/query (event:goal) with the dashboard's other filters; with a
// comparison selected, the same one call also answers each goal's figures in the comparison period
// (include.comparisons), shown under each figure as the KPI cards show theirs (delta.js). A row
// click toggles the `goal` filter, which every other figure of the dashboard then follows.
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { state } from './state.js';
import { queryFilters } from './filters.js';
import { comparisonsBody, postQuery } from './compare.js';
import { compared, showDelta } from './delta.js';

const COLUMNS = ['Goal', 'Visitors', 'Events', 'Rate', 'Revenue'];

/** Makes the (loading) Goals card in `root`; a row click toggles the goal filter, then `onFilter`. */
export function buildGoals(root, onFilter) {
  // One card across the grid: five columns and goal names need the width; on a phone the table
  // scrolls within its card rather than widening the page.
  root.style.gridTemplateColumns = 'minmax(0, 1fr)';
  const scroller = h('div', {});
  scroller.style.overflowX = 'auto';
  root.replaceChildren(
    h(
      'section',
      { class: 'card table-card', 'aria-labelledby': 'title-goals' },
      h('h2', { id: 'title-goals', textContent: 'Goals' }),
      scroller,
    ),
  );
  scroller.append(
    h(
      'table',
      { id: 'table-goals', dataset: { testid: 'table-goals' } },
      h('caption', {
        class: 'sr-only',
        textContent:
          'Goals: converted visitors, goal events, conversion rate and revenue, each with its change from the comparison period; select a row to filter the dashboard',
      }),
      h('thead', {}, h('tr', {}, ...COLUMNS.map((c, i) => h('th', { scope: 'col', class: i ? 'num' : '', textContent: c })))),
      h('tbody', {}, placeholder('Loading…')),
    ),
  );
  root.addEventListener('click', (e) => {
    const b = e.target.closest('button.row-filter');
    if (!b) return;
    if (state.filters.goal === b.dataset.goal) delete state.filters.goal;
    else state.filters.goal = b.dataset.goal;
    onFilter();
    $('main').focus({ preventScroll: true });
  });
}

function placeholder(text) {
  return h('tr', { class: 'placeholder' }, h('td', { colspan: COLUMNS.length, textContent: text }));
}

function money(v) {
  if (!v || typeof v !== 'object') return '–';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: v.currency }).format(v.value);
  } catch {
    return `${v.value} ${v.currency}`;
  }
}

/**
 * The /v0/query body for the goals of `from..to` with the dashboard's other filters, and with the
 * comparison `view.compare` (compare.js state) unless it is off.
 */
export function goalsQuery(view) {
  const { from, to, timezone, domain } = view;
  const comparisons = view.compare ? comparisonsBody(view.compare) : null;
  const body = {
    metrics: ['conversions', 'events', 'conversion_rate', 'total_revenue'],
    date_range: [from, to],
    dimensions: ['event:goal'],
    timezone,
    filters: queryFilters(view, { goal: false }),
    order_by: [['conversions', 'desc']],
    pagination: { limit: 50 },
  };
  if (comparisons) body.include = { comparisons };
  if (domain) body.site_id = domain;
  return body;
}

/** Loads and draws the goals; resolves when drawn (rejects only with an AbortError). */
export async function loadGoals(view, token, signal, current) {
  const body = $('table-goals').tBodies[0];
  let rows;
  try {
    rows = (await postQuery(goalsQuery(view), token, signal)).results;
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    current(() => body.replaceChildren(placeholder('Could not load the goals.')))();
    return;
  }
  current(() => renderGoals(rows))();
}

const rateText = (v) => fmt.percent((Number(v) || 0) / 100);

/**
 * A figure's cell: the value (`data-testid` = `key`, `data-value`) and, when the row has a comparison,
 * its change under it (`data-testid` = `delta-<key>`, delta.js).
 */
function cell(key, value, text, delta) {
  const shown = h('span', { dataset: { testid: key, value }, textContent: text });
  if (!delta) return h('td', { class: 'num' }, shown);
  const d = h('span', { class: 'cell-delta', dataset: { testid: `delta-${key}` } });
  showDelta(d, delta);
  return h('td', { class: 'num' }, shown, d);
}

/**
 * The change of a goal's revenue (`{value, currency}` or null in each period): only between amounts in
 * one currency (a goal's currency may have changed between the periods: then "n/a"); none when
 * neither period had any.
 */
function revenueDelta(cur, prev, pct) {
  if (!cur && !prev) return null;
  const currency = (cur ?? prev).currency;
  const inCurrency = (value) => money({ value, currency });
  if (cur && prev && cur.currency !== prev.currency)
    return { cur: 0, prev: 0, fmt: inCurrency, na: `not comparable: in ${prev.currency} ${compared()}, in ${cur.currency} now` };
  return { cur: Number(cur?.value) || 0, prev: Number(prev?.value) || 0, pct, fmt: inCurrency };
}

export function renderGoals(rows) {
  const body = $('table-goals').tBodies[0];
  state.goalNames = rows.map((r) => String(r.dimensions[0]));
  if (!rows.length) {
    body.replaceChildren(placeholder('No conversions in this period.'));
    return;
  }
  const max = Math.max(1, ...rows.map((r) => Number(r.metrics[0]) || 0));
  body.replaceChildren(
    ...rows.map((r) => {
      const [name] = r.dimensions;
      const [visitors, events, rate, revenue] = r.metrics;
      // The comparison's figures and the API's change of each, in the order of the metrics.
      const c = r.comparison;
      const change = (i) => (Number.isFinite(c?.change?.[i]) ? c.change[i] : undefined);
      const delta = (i, f) => c && { cur: Number(r.metrics[i]) || 0, prev: Number(c.metrics[i]) || 0, pct: change(i), fmt: f };
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.max(1, Math.round(((Number(visitors) || 0) / max) * 100))}%`;
      const button = h(
        'button',
        {
          type: 'button',
          class: 'row-filter',
          title: `Filter by goal: ${name}`,
          'aria-pressed': String(state.filters.goal === name),
          dataset: { goal: name },
        },
        h('span', { class: 'label', textContent: name }),
      );
      return h(
        'tr',
        { dataset: { testid: 'row', key: name } },
        h('td', { class: 'name' }, bar, button),
        cell('visitors', String(visitors), fmt.int(visitors), delta(0, fmt.int)),
        cell('events', String(events), fmt.int(events), delta(1, fmt.int)),
        cell('rate', String(rate), rateText(rate), delta(2, rateText)),
        cell(
          'revenue',
          revenue ? `${revenue.value} ${revenue.currency}` : '',
          money(revenue),
          c && revenueDelta(revenue, c.metrics[3], change(3)),
        ),
      );
    }),
  );
}
