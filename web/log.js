// The deployment log (#/log): one row per deployment, newest first, linked to the deployment
// and to its release, with what it replaced, who approved it and what went wrong.
import { getJson, paths, errorText } from './api.js';
import { el, clear, badge, timeEl, link, deploymentHref, releaseHref, legend, setOptions } from './dom.js';

export function renderLog(main) {
  document.title = 'Log · Flotilla';
  const [serviceSel, envSel] = [el('select', { id: 'log-service' }), el('select', { id: 'log-environment' })];
  for (const s of [serviceSel, envSel]) s.append(el('option', { value: '', text: 'All' }));
  const tbody = el('tbody');
  const status = el('p', { class: 'muted small', 'aria-live': 'polite' });
  main.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Deployment log' }), legend()),
    el('section', { class: 'card', 'aria-labelledby': 'log-title' },
      el('h2', { id: 'log-title', text: 'Every deployment, newest first' }),
      el('form', { class: 'filters', 'aria-label': 'Filter the log' },
        el('div', { class: 'field inline' }, el('label', { for: 'log-service', text: 'Service' }), serviceSel),
        el('div', { class: 'field inline' }, el('label', { for: 'log-environment', text: 'Environment' }), envSel)),
      el('div', { class: 'table-wrap' }, el('table', { class: 'grid', dataset: { testid: 'log' } },
        el('thead', {}, el('tr', {}, ['Deployment', 'Release', 'State', 'Environments', 'Replaced', 'By', 'Approvals', 'Started', 'Finished', 'Issues'].map(
          (h) => el('th', { scope: 'col', text: h })))),
        tbody)),
      status));

  let alive = true;
  let entries = [];

  function draw() {
    const svc = serviceSel.value;
    const env = envSel.value;
    clear(tbody);
    const shown = entries.filter((e) => (!svc || e.service === svc) && (!env || (e.environments || []).includes(env)));
    for (const e of shown) {
      const replaced = (e.previous_versions || []).map((p) => (typeof p === 'string' ? p : p.version || JSON.stringify(p)));
      const issue = e.failure ? `${e.failure.cluster} ${e.failure.step}: ${e.failure.message}` : e.reason || '';
      tbody.append(el('tr', { dataset: { testid: 'log-row', id: e.id } },
        el('td', {}, link(deploymentHref(e.id), e.id, { class: 'mono' })),
        el('td', {}, link(releaseHref(e.service, e.version), `${e.service} ${e.version}`, { class: 'nowrap' }),
          e.hotfix ? el('span', { class: 'tag', title: e.hotfix, text: 'hotfix' }) : null),
        el('td', {}, badge(e.state)),
        el('td', { text: (e.environments || []).join(', ') || '—' }),
        el('td', { class: 'small', text: [...new Set(replaced)].join(', ') || '—' }),
        el('td', { text: e.submitted_by || '—' }),
        el('td', { class: 'small', text: (e.approvals || []).map((a) => `${a.by} (${a.wave})`).join(', ') || '—' }),
        el('td', {}, timeEl(e.created_at)),
        el('td', {}, timeEl(e.finished_at)),
        el('td', { class: 'small' }, e.issues_total ? `${e.issues_total} · ` : '', issue ? el('span', { text: issue }) : '—')));
    }
    if (!shown.length) {
      tbody.append(el('tr', {}, el('td', { colspan: '10', class: 'muted', text: 'No deployment in the log.' })));
    }
    status.textContent = `${shown.length} of ${entries.length} entries${shown.length ? '' : ''}`;
  }
  serviceSel.addEventListener('change', draw);
  envSel.addEventListener('change', draw);

  (async () => {
    try {
      const log = await getJson(paths.log());
      if (!alive) return;
      entries = log.entries || [];
      const uniq = (xs) => [...new Set(xs.filter(Boolean))].sort();
      setOptions(serviceSel, uniq(entries.map((e) => e.service)), 'All');
      setOptions(envSel, uniq(entries.flatMap((e) => e.environments || [])), 'All');
      draw();
      if (log.truncated) status.textContent += ' (truncated: older entries left out)';
    } catch (err) {
      if (alive) status.textContent = `Could not load the log: ${errorText(err)}`;
    }
  })();
  return () => { alive = false; };
}
