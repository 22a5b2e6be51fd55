// Everything about the dashboard that changes while it runs, in one object: the view (range,
// domain, filters, metric), the token and theme, what was loaded, and the handles of the timers and
// requests in flight. Modules read and write `state.x`; nothing else here is mutable.
import { viewerTimeZone } from './dates.js';
import { DEFAULT_THEME } from './theme.js';

/** The viewer's time zone: dates and hours are shown, and asked for, in it. */
export const tz = viewerTimeZone();
/** Whether we run in an iframe (the embed element or another page). */
export const framed = window.parent !== window;

export const state = {
  token: null,
  /** Theme values, lowest precedence first: the tenant's settings (for the token `tenantFor`), the
   * fragment (kept there), the parent (postMessage). */
  tenantTheme: {},
  tenantFor: null,
  hashTheme: {},
  parentTheme: {},
  theme: DEFAULT_THEME,
  range: '7d',
  custom: {},
  domain: '',
  filters: {},
  metric: 'visitors',
  /** The comparison (compare.js): mode, custom from/to, match day of week. */
  compare: { mode: 'previous_period', from: '', to: '', matchDow: false },
  /** The selected saved segment's id ('' for none), and the tenant's segments once listed. */
  segment: '',
  /** The Properties card (props.js): the key shown ('' for none) and its goal (null: follow the
   * dashboard's goal filter; '' for all events); the goal names of the Goals table. */
  propKey: '',
  propGoal: null,
  goalNames: [],
  segments: null,
  segmentsFor: null,
  domains: null,
  series: null,
  hourly: false,
  fatal: false,
  parentOrigin: null,
  /** The uPlot chart (chart.js), made at start-up. */
  chart: undefined,
  /** Loading: each load() takes the next generation and aborts the previous one's requests. */
  generation: 0,
  controller: null,
  /** The pending automatic retry after a rate limit, and how many were made since the last success. */
  retryTimer: null,
  rateRetries: 0,
  /** The live visitors poll: its interval and its request in flight. */
  liveTimer: null,
  liveController: null,
  /** The height last sent to the embedding page. */
  lastHeight: 0,
};
