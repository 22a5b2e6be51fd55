// <starling-dashboard>: embeds the Starling dashboard in any page.
//
//   <script src="https://analytics.example.com/embed/starling-dashboard.js" defer></script>
//   <starling-dashboard src="https://analytics.example.com/dashboard/" token="<read token>"
//                       name="Acme" logo="https://acme.example/logo.svg" color="#0f766e" theme="dark" brand="none">
//   </starling-dashboard>
//
// The element creates an iframe of `src` (without any fragment) and, once the dashboard says it is
// ready, hands it the token and theme by postMessage addressed to the iframe's own origin only. The
// token never appears in the iframe's URL. The iframe grows to the dashboard's height unless a
// `height` attribute (CSS pixels) is given.

const THEME_ATTRS = ['name', 'logo', 'color', 'theme', 'brand'];

class StarlingDashboard extends HTMLElement {
  static get observedAttributes() {
    return ['src', 'token', 'height', 'title', ...THEME_ATTRS];
  }

  constructor() {
    super();
    this._frame = null;
    this._origin = null;
    this._ready = false;
    this._token = null;
    this._onMessage = this._onMessage.bind(this);
  }

  /** The read token; setting the property keeps it out of the DOM's attributes. */
  get token() {
    return this._token ?? this.getAttribute('token') ?? '';
  }

  set token(v) {
    this._token = v == null ? null : String(v);
    this._send();
  }

  connectedCallback() {
    if (!this.style.display) this.style.display = 'block';
    window.addEventListener('message', this._onMessage);
    this._render();
  }

  disconnectedCallback() {
    window.removeEventListener('message', this._onMessage);
    this._frame = null;
    this._ready = false;
  }

  attributeChangedCallback(name, before, after) {
    if (!this.isConnected || before === after) return;
    if (name === 'src') this._render();
    else if (name === 'height') this._size();
    else if (name === 'title') {
      if (this._frame) this._frame.title = this._title();
    } else this._send();
  }

  _title() {
    return this.getAttribute('title') || 'Analytics dashboard';
  }

  _render() {
    let src;
    try {
      src = new URL(this.getAttribute('src') || '/dashboard/', document.baseURI);
    } catch {
      return;
    }
    if (src.protocol !== 'https:' && src.protocol !== 'http:') return;
    src.hash = '';
    this._origin = src.origin;
    this._ready = false;
    const f = document.createElement('iframe');
    f.title = this._title();
    f.referrerPolicy = 'no-referrer';
    f.style.width = '100%';
    f.style.border = '0';
    f.style.display = 'block';
    f.style.colorScheme = 'normal';
    f.src = src.href;
    this._frame = f;
    this._size(600);
    this.replaceChildren(f);
  }

  _size(fallback) {
    if (!this._frame) return;
    const fixed = Number(this.getAttribute('height'));
    if (fixed > 0) this._frame.style.height = `${Math.round(fixed)}px`;
    else if (fallback) this._frame.style.height = `${fallback}px`;
  }

  _send() {
    const win = this._frame?.contentWindow;
    if (!win || !this._ready || !this._origin) return;
    const theme = {};
    for (const k of THEME_ATTRS) if (this.hasAttribute(k)) theme[k] = this.getAttribute(k);
    // Addressed to the dashboard's origin: if the frame navigated elsewhere, nothing is delivered.
    win.postMessage({ type: 'starling:token', token: this.token, theme }, this._origin);
  }

  _onMessage(e) {
    if (!this._frame || e.source !== this._frame.contentWindow || e.origin !== this._origin) return;
    const d = e.data;
    if (!d || typeof d !== 'object') return;
    if (d.type === 'starling:ready') {
      this._ready = true;
      this._send();
    } else if (d.type === 'starling:height' && !(Number(this.getAttribute('height')) > 0)) {
      const hgt = Math.min(20000, Math.max(200, Math.round(Number(d.height) || 0)));
      this._frame.style.height = `${hgt}px`;
    }
  }
}

if (!customElements.get('starling-dashboard')) customElements.define('starling-dashboard', StarlingDashboard);
