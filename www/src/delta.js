// A figure's change against the chosen comparison, as the KPI cards and the Goals table show it:
// "▲ 12%", "▼ 3%" or "= 0%"; "new" when the comparison had none, "–" when neither period had any,
// "n/a" when the two cannot be compared; green when the change is good news, red when it is bad; the
// whole sentence for screen readers and as the tooltip.
import { h } from './dom.js';
import { state } from './state.js';

/** How the comparison reads in sentences ("in the previous period"). */
export function compared() {
  const m = state.compare?.mode;
  if (m === 'year_over_year') return 'a year earlier';
  if (m === 'custom') return 'in the comparison range';
  return 'in the previous period';
}

/**
 * Fills `el` with the change from `prev` to `cur` (numbers) under the current comparison.
 * - `fmt` formats a value for the sentence; `lowerIsBetter` turns the colours round;
 * - `pct`: the change in percent when the API computed it (POST /v0/query's `change`), else
 *   `(cur - prev) / prev`;
 * - `na`: why the two cannot be compared (then "n/a", with that reason as the sentence).
 * Keeps `prev` in `data-previous` and the unrounded change in `data-change` for the tests.
 */
export function showDelta(el, { cur, prev, fmt, pct, lowerIsBetter = false, na = '' }) {
  el.classList.remove('good', 'bad');
  el.dataset.previous = String(prev);
  delete el.dataset.change;
  let text;
  let said;
  if (state.compare?.mode === 'off') {
    text = '';
    said = 'no comparison';
  } else if (na) {
    text = 'n/a';
    said = na;
  } else if (prev === 0) {
    text = cur === 0 ? '–' : 'new';
    said = cur === 0 ? 'no data in either period' : `none ${compared()}`;
  } else {
    const change = pct ?? ((cur - prev) / prev) * 100;
    el.dataset.change = String(change);
    const r = Math.round(change);
    const dir = r > 0 ? 'up' : r < 0 ? 'down' : 'flat';
    text = `${r > 0 ? '▲' : r < 0 ? '▼' : '='} ${Math.abs(r)}%`;
    said = `${dir === 'flat' ? 'no change' : `${dir} ${Math.abs(r)}%`} from ${fmt(prev)} ${compared()}`;
    if (dir !== 'flat') el.classList.add((dir === 'up') !== Boolean(lowerIsBetter) ? 'good' : 'bad');
  }
  el.replaceChildren(h('span', { 'aria-hidden': 'true', textContent: text }), h('span', { class: 'sr-only', textContent: said }));
  el.title = said.charAt(0).toUpperCase() + said.slice(1);
}
