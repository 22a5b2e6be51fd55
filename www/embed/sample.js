// The sample host page's own script: takes the read token from this page's fragment (#token=…),
// removes it from the address bar, and gives it to <starling-dashboard> as a property.
const el = document.getElementById('dashboard');
const params = new URLSearchParams(location.hash.slice(1));
const token = params.get('token');
if (token) {
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  el.token = token;
}
const select = document.getElementById('theme');
select.value = el.getAttribute('theme') || 'auto';
select.addEventListener('change', () => el.setAttribute('theme', select.value));
