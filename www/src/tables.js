// The top lists (pages, sources, campaigns, browsers, ...): their endpoints, and their tables, whose
// rows toggle the dashboard's filters.
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { state } from './state.js';
import { FILTERS, pretty } from './filters.js';

/** The top lists: endpoint, key column, filter a row click sets, how a row is shown. */
export const TABLES = [
  { pipe: 'top_pages', title: 'Pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'entry_pages', title: 'Entry pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'exit_pages', title: 'Exit pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'top_sources', title: 'Sources', col: 'Source', key: 'referrer', filter: 'source', empty: 'Direct / none' },
  {
    pipe: 'top_campaigns',
    title: 'Campaigns',
    col: 'Campaign',
    key: 'utm_campaign',
    filter: 'utm_campaign',
    sub: (r) => [r.utm_source, r.utm_medium].filter(Boolean).join(' / '),
    filters: (r) => ({ utm_campaign: r.utm_campaign, utm_source: r.utm_source, utm_medium: r.utm_medium }),
  },
  { pipe: 'top_browsers', title: 'Browsers', col: 'Browser', key: 'browser', filter: 'browser', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_os', title: 'Operating systems', col: 'System', key: 'os', filter: 'os', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_devices', title: 'Devices', col: 'Device', key: 'device', filter: 'device', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_locations', title: 'Countries', col: 'Country', key: 'location', filter: 'country', label: fmt.country },
];
export const TABLE_LIMIT = 10;

/** Makes the (loading) tables; a row click toggles that row's filters in state, then calls `onFilter`. */
export function buildTables(onFilter) {
  $('tables').replaceChildren(
    ...TABLES.map((t) =>
      h(
        'section',
        { class: 'card table-card', 'aria-labelledby': `title-${t.pipe}` },
        h('h2', { id: `title-${t.pipe}`, textContent: t.title }),
        h(
          'table',
          { id: `table-${t.pipe}`, dataset: { testid: `table-${t.pipe}` } },
          h('caption', { class: 'sr-only', textContent: `${t.title}: visits and pageviews; select a row to filter the dashboard` }),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col', textContent: t.col }),
              h('th', { scope: 'col', class: 'num', textContent: 'Visits' }),
              h('th', { scope: 'col', class: 'num', textContent: 'Views' }),
            ),
          ),
          h('tbody', {}, h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'Loading…' }))),
        ),
      ),
    ),
  );
  $('tables').addEventListener('click', (e) => {
    const b = e.target.closest('button.row-filter');
    if (!b) return;
    const add = JSON.parse(b.dataset.filters);
    const active = Object.entries(add).every(([k, v]) => !v || state.filters[k] === v);
    for (const [k, v] of Object.entries(add)) {
      if (active) delete state.filters[k];
      else if (v) state.filters[k] = v;
      else delete state.filters[k];
    }
    onFilter();
    $('main').focus({ preventScroll: true });
  });
}

export function renderTable(t, rows) {
  const body = $(`table-${t.pipe}`).tBodies[0];
  if (!rows.length) {
    body.replaceChildren(h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'No data for this period.' })));
    return;
  }
  const max = Math.max(1, ...rows.map((r) => Number(r.visits) || 0));
  body.replaceChildren(
    ...rows.map((r) => {
      const value = r[t.key] ?? '';
      const label = value ? (t.label ? t.label(value) : value) : t.empty || '(none)';
      const filters = t.filters ? t.filters(r) : { [t.filter]: value };
      const active = value && Object.entries(filters).every(([k, v]) => !v || state.filters[k] === v);
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.max(1, Math.round(((Number(r.visits) || 0) / max) * 100))}%`;
      const sub = t.sub ? t.sub(r) : '';
      const name = value
        ? h(
            'button',
            {
              type: 'button',
              class: 'row-filter',
              title: `Filter by ${FILTERS[t.filter].toLowerCase()}: ${label}`,
              'aria-pressed': String(Boolean(active)),
              dataset: { filters: JSON.stringify(filters) },
            },
            h('span', { class: 'label', textContent: label }),
            sub && h('span', { class: 'sub', textContent: sub }),
          )
        : h('span', { class: 'row-static' }, h('span', { class: 'label', textContent: label }));
      return h(
        'tr',
        { dataset: { testid: 'row', key: value } },
        h('td', { class: 'name' }, bar, name),
        h('td', { class: 'num', dataset: { testid: 'visits', value: String(r.visits) }, textContent: fmt.int(r.visits) }),
        h('td', { class: 'num', dataset: { testid: 'hits', value: String(r.hits) }, textContent: fmt.int(r.hits) }),
      );
    }),
  );
}

export function tableFailed(t) {
  $(`table-${t.pipe}`).tBodies[0].replaceChildren(
    h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'Could not load this list.' })),
  );
}
