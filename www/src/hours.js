// "Traffic by hour of the day": the kit's traffic_by_hour for the period and filters in force, as 24
// columns (visits that started in each local hour, summed over the period's days) and the same data
// as a table. Bar heights are set through the CSSOM (`element.style`), which the dashboard's CSP
// allows (no style attributes), as speed.js does.
import { pipe } from './api.js';
import * as fmt from './format.js';
import { $, h } from './dom.js';

/** Fills `root` with the card (bars and table empty until loaded). */
export function buildHours(root) {
  root.replaceChildren(
    h(
      'section',
      { class: 'card hours-card', id: 'hours-card', 'aria-labelledby': 'hours-title', dataset: { testid: 'hours' } },
      h('h2', { id: 'hours-title', textContent: 'Visits by hour of the day' }),
      h('div', { class: 'hours-bars', id: 'hours-bars', 'aria-hidden': 'true' }),
      h(
        'details',
        { class: 'chart-data' },
        h('summary', { textContent: 'Show the hours as a table' }),
        h(
          'div',
          { class: 'table-scroll' },
          h(
            'table',
            { dataset: { testid: 'hours-table' } },
            h('caption', { class: 'sr-only', textContent: 'Visits and pageviews by hour of the day' }),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col', textContent: 'Hour' }),
                h('th', { scope: 'col', class: 'num', textContent: 'Visits' }),
                h('th', { scope: 'col', class: 'num', textContent: 'Pageviews' }),
              ),
            ),
            h('tbody', { id: 'hours-rows' }),
          ),
        ),
      ),
    ),
  );
}

const label = (hour) => `${String(hour).padStart(2, '0')}:00`;

function render(rows) {
  const max = Math.max(1, ...rows.map((r) => Number(r.visits) || 0));
  $('hours-bars').replaceChildren(
    ...rows.map((r) => {
      const bar = h('span', { class: 'hours-bar' });
      bar.style.height = `${(100 * (Number(r.visits) || 0)) / max}%`;
      return h(
        'div',
        { class: 'hours-col', title: `${label(r.hour)}: ${fmt.int(r.visits)} visits` },
        bar,
        h('span', { class: 'hours-label', textContent: r.hour % 3 === 0 ? String(r.hour) : '' }),
      );
    }),
  );
  $('hours-rows').replaceChildren(
    ...rows.map((r) =>
      h(
        'tr',
        { dataset: { testid: 'row', hour: String(r.hour), visits: String(r.visits), pageviews: String(r.pageviews) } },
        h('th', { scope: 'row', textContent: label(r.hour) }),
        h('td', { class: 'num', textContent: fmt.int(r.visits) }),
        h('td', { class: 'num', textContent: fmt.int(r.pageviews) }),
      ),
    ),
  );
}

/** Loads the card for the dashboard's parameters; returns the request's promise. */
export function loadHours(params, token, signal, current) {
  return pipe('traffic_by_hour', params, token, signal).then(current((r) => render(r.data)));
}
