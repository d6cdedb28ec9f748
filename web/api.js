// The coordinator's HTTP API as the page uses it: the session cookie authenticates, and every
// mutating request carries the session's CSRF token and a JSON body.

let csrf = '';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

export function setCsrf(token) {
  csrf = token || '';
}

async function answer(res) {
  let body = null;
  const text = await res.text();
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!res.ok) {
    const why = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
    if (res.status === 401) window.dispatchEvent(new CustomEvent('flotilla:unauthorized'));
    throw new ApiError(res.status, why);
  }
  return body;
}

export async function getJson(path, signal) {
  const res = await fetch(path, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
    signal,
  });
  return answer(res);
}

export async function send(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: {
      Accept: 'application/json',
      'Content-Type': 'application/json',
      'X-Flotilla-CSRF': csrf,
    },
    body: JSON.stringify(body || {}),
    cache: 'no-store',
  });
  return answer(res);
}

// The session: null when not logged in (401), the session JSON otherwise.
export async function currentSession() {
  const res = await fetch('/api/v1/session', {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
  });
  if (res.status === 401 || res.status === 404) return null;  // no session
  return answer(res);
}

export async function logIn(token) {
  const res = await fetch('/api/v1/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
    cache: 'no-store',
  });
  if (res.status === 401) {
    const body = await res.json().catch(() => null);
    throw new ApiError(401, body && body.error ? body.error : 'that token is not valid');
  }
  return answer(res);
}

export function logOut() {
  return send('DELETE', '/api/v1/session', {});
}

export const paths = {
  deployments: () => '/api/v1/deployments',
  deployment: (id) => `/api/v1/deployments/${encodeURIComponent(id)}`,
  summary: (id) => `/api/v1/deployments/${encodeURIComponent(id)}?view=summary`,
  clusters: (id, wave, offset, limit, state) => {
    const q = new URLSearchParams({ wave, offset: String(offset), limit: String(limit) });
    if (state) q.set('state', state);
    return `/api/v1/deployments/${encodeURIComponent(id)}/clusters?${q}`;
  },
  events: (id, after, type) => {
    const q = new URLSearchParams({ after: String(after || 0) });
    if (type) q.set('type', type);
    return `/api/v1/deployments/${encodeURIComponent(id)}/events?${q}`;
  },
  stream: (id, after) =>
    `/api/v1/deployments/${encodeURIComponent(id)}/events?after=${after}&plain=1`,
  action: (id, verb) => `/api/v1/deployments/${encodeURIComponent(id)}/${verb}?view=summary`,
  agents: () => '/api/v1/agents',
  freeze: () => '/api/v1/freeze',
  release: (service, version) =>
    `/api/v1/releases/${encodeURIComponent(service)}/${encodeURIComponent(version)}`,
  log: () => '/api/v1/log',
};
