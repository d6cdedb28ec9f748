// The dashboard's entry: the session (login and logout), the header, and hash routing to one
// view at a time. A view is a function (main, params, ctx) -> cleanup; the cleanup stops its
// polling and streams when the route changes.
import { currentSession, logIn, logOut, setCsrf, errorText } from './api.js';
import { el, clear } from './dom.js';
import { renderOverview } from './overview.js';
import { renderAgents } from './agents.js';
import { renderDeployment } from './deployment.js';
import { renderRelease } from './release.js';
import { renderLog } from './log.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const whoami = document.getElementById('whoami');
const logoutButton = document.getElementById('logout');

let session = null;
let cleanup = null;

const ROUTES = [
  [/^#?\/?$/, 'overview', () => renderOverview],
  [/^#\/agents\/?$/, 'agents', () => renderAgents],
  [/^#\/log\/?$/, 'log', () => renderLog],
  [/^#\/deployments\/([^/]+)\/?$/, 'overview', () => renderDeployment],
  [/^#\/releases\/([^/]+)\/([^/]+)\/?$/, 'log', () => renderRelease],
];

function stopView() {
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
  }
  cleanup = null;
}

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  if (!session) return;
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/') && hash !== '#' && hash !== '') return;  // an in-page anchor
  stopView();
  clear(main);
  for (const [pattern, section, view] of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    for (const a of nav.querySelectorAll('a')) {
      if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    cleanup = view()(main, m.slice(1).map(decode), { session }) || null;
    main.focus({ preventScroll: true });
    return;
  }
  document.title = 'Not found · Flotilla';
  main.append(el('h1', { text: 'Not found' }),
    el('p', {}, 'No page at this address. ', el('a', { href: '#/' }, 'Back to the overview')));
}

function showSignedIn() {
  whoami.textContent = `${session.name} (${session.role})`;
  nav.hidden = false;
  who.hidden = false;
}

function showLogin(message) {
  stopView();
  session = null;
  setCsrf('');
  nav.hidden = true;
  who.hidden = true;
  whoami.textContent = '';
  document.title = 'Log in · Flotilla';
  clear(main);
  const error = el('p', { class: 'error', role: 'alert', dataset: { testid: 'login-error' } });
  if (message) error.textContent = message;
  else error.hidden = true;
  const input = el('input', {
    id: 'token', type: 'password', name: 'token', autocomplete: 'off',
    required: true, spellcheck: 'false', 'aria-describedby': 'token-help',
  });
  const button = el('button', { type: 'submit', class: 'primary', text: 'Log in' });
  const form = el('form', { class: 'login card', dataset: { testid: 'login' } },
    el('div', { class: 'field' },
      el('label', { for: 'token', text: 'API token' }),
      input,
      el('p', { id: 'token-help', class: 'muted small' },
        'The token from `flotilla tokens create` (or bootstrap-admin). It is exchanged for a ',
        'session cookie and not kept by the page.')),
    error,
    button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.hidden = false;
      error.textContent = 'Enter an API token.';
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const s = await logIn(token);
      input.value = '';
      signedIn(s);
    } catch (err) {
      error.hidden = false;
      error.textContent = err.status === 401
        ? `Log in refused: ${errorText(err)}`
        : `Could not log in: ${errorText(err)}`;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(el('section', { class: 'login-wrap', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title', text: 'Log in to Flotilla' }), form));
  input.focus();
}

function signedIn(s) {
  session = s;
  setCsrf(s.csrf);
  showSignedIn();
  route();
}

logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true;
  try {
    await logOut();
  } catch (err) {
    // Already gone on the server (expired): the page logs out all the same.
    if (err.status !== 401) console.warn('logout:', errorText(err));
  } finally {
    logoutButton.disabled = false;
  }
  showLogin('');
});

window.addEventListener('flotilla:unauthorized', () => {
  if (session) showLogin('Your session ended. Log in again.');
});
window.addEventListener('hashchange', route);

document.querySelector('.skip-link').addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
});

async function boot() {
  try {
    const s = await currentSession();
    if (s) signedIn(s);
    else showLogin('');
  } catch (err) {
    clear(main);
    main.append(el('h1', { text: 'Flotilla' }),
      el('p', { class: 'error', role: 'alert', text: `The coordinator did not answer: ${errorText(err)}` }),
      el('p', {}, 'Reload the page to try again.'));
  }
}

boot();
