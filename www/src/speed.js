// The dashboard's views of the tracker's opt-in captures (issue #12): "Speed" (web vitals: p75 per
// metric with its rating and the share of good / needs-improvement / poor loads, and the slowest
// routes), and tables of outbound links, file downloads and 404 pages. Each section shows only when
// its endpoint has data for the period, so sites that do not enable a capture see nothing new.
import { pipe } from './api.js';
import * as fmt from './format.js';

const METRICS = {
  LCP: 'Largest contentful paint',
  INP: 'Interaction to next paint',
  CLS: 'Cumulative layout shift',
  FCP: 'First contentful paint',
  TTFB: 'Time to first byte',
};
const RATING = { good: 'Good', 'needs-improvement': 'Needs improvement', poor: 'Poor' };
const LISTS = [
  { pipe: 'top_outbound_links', title: 'Outbound links', col: 'Link', key: 'url', count: 'Clicks' },
  { pipe: 'top_file_downloads', title: 'File downloads', col: 'File', key: 'url', count: 'Downloads' },
  { pipe: 'top_not_found_pages', title: '404 pages', col: 'Page', key: 'pathname', count: 'Visits' },
];

const el = (tag, { dataset = {}, ...props } = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  Object.assign(e.dataset, dataset);
  e.append(...children.filter((c) => c != null && c !== false));
  return e;
};
const value = (m, v) => (v == null ? '–' : m === 'CLS' ? fmt.dec(v) : `${fmt.int(v)} ms`);

function section(id, title, ...body) {
  return el(
    'section',
    { className: 'card table-card', id, hidden: true, dataset: { testid: id } },
    el('h2', { textContent: title }),
    ...body,
  );
}

/** Fills `root` with the (hidden) sections. */
export function buildCaptures(root) {
  root.replaceChildren(
    section(
      'speed',
      'Speed (Core Web Vitals, 75th percentile)',
      el('div', { className: 'vitals', id: 'vitals' }),
      el(
        'table',
        { id: 'speed-routes', dataset: { testid: 'speed-routes' } },
        el('caption', { textContent: 'Routes, slowest first' }),
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...['Route', 'LCP', 'INP', 'CLS', 'Loads'].map((t, i) => el('th', { scope: 'col', className: i ? 'num' : '', textContent: t })),
          ),
        ),
        el('tbody'),
      ),
    ),
    ...LISTS.map((l) =>
      section(
        `list-${l.pipe}`,
        l.title,
        el(
          'table',
          { dataset: { testid: `table-${l.pipe}` } },
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              el('th', { scope: 'col', textContent: l.col }),
              el('th', { scope: 'col', className: 'num', textContent: l.count }),
            ),
          ),
          el('tbody'),
        ),
      ),
    ),
  );
}

function renderVitals(current, routes) {
  const box = document.getElementById('vitals');
  box.replaceChildren(
    ...current.map((r) => {
      const shares = el(
        'div',
        { className: 'shares', ariaHidden: 'true' },
        ...['good', 'needs_improvement', 'poor'].map((k) => {
          const s = el('span', { className: `share ${k}` });
          s.style.width = `${r[`${k}_percentage`]}%`;
          return s;
        }),
      );
      return el(
        'div',
        { className: `vital ${r.rating}`, dataset: { testid: `vital-${r.metric_name}`, rating: r.rating } },
        el('abbr', { title: METRICS[r.metric_name] || r.metric_name, textContent: r.metric_name }),
        el('strong', { textContent: value(r.metric_name, r.p75) }),
        el('span', { className: 'rating', textContent: RATING[r.rating] || r.rating }),
        shares,
        el('span', { className: 'sub', textContent: `${fmt.int(r.measurements)} loads · ${r.good_percentage}% good` }),
      );
    }),
  );
  document
    .getElementById('speed-routes')
    .tBodies[0].replaceChildren(
      ...routes.map((r) =>
        el(
          'tr',
          { dataset: { testid: 'row', key: r.route } },
          el('td', { textContent: r.route }),
          ...['LCP', 'INP', 'CLS'].map((m) =>
            el('td', { className: `num ${r[`${m.toLowerCase()}_rating`] || ''}`, textContent: value(m, r[`${m.toLowerCase()}_p75`]) }),
          ),
          el('td', { className: 'num', textContent: fmt.int(r.measurements) }),
        ),
      ),
    );
  document.getElementById('speed').hidden = current.length === 0;
}

function renderList(l, rows) {
  const t = document.getElementById(`list-${l.pipe}`);
  t.querySelector('tbody').replaceChildren(
    ...rows.map((r) =>
      el(
        'tr',
        { dataset: { testid: 'row', key: r[l.key] } },
        el('td', { className: 'name', textContent: r[l.key] }),
        el('td', { className: 'num', textContent: fmt.int(r.count) }),
      ),
    ),
  );
  t.hidden = rows.length === 0;
}

/**
 * Loads every section for the period `from..to` (`days` back from today for web vitals, whose
 * endpoints count in whole UTC days). Returns the requests' promises for the caller's error handling.
 */
export function loadCaptures({ from, to, days, domain }, token, signal, current) {
  const dated = { date_from: from, date_to: to, domain, limit: 10 };
  return [
    Promise.all([
      pipe('web_vitals_current', { days, domain }, token, signal),
      pipe('web_vitals_routes', { days, domain, limit: 10 }, token, signal),
    ]).then(current(([c, r]) => renderVitals(c.data, r.data))),
    ...LISTS.map((l) => pipe(l.pipe, dated, token, signal).then(current((r) => renderList(l, r.data)))),
  ];
}
