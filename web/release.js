// A release (#/releases/SERVICE/VERSION): its checklist (the checks CI reported and the ones an
// environment requires that nobody reported), whether each environment is ready for it, where
// it succeeded, and its deployments.
import { getJson, paths, errorText } from './api.js';
import { el, timeEl, link, deploymentHref, badge, safeUrl } from './dom.js';

// A required check's text ("coverage >= 80") starts with the reported check's name.
function checkName(text) {
  return String(text).split(/[\s<>=!]/)[0];
}

function item(state, name, ...detail) {
  const mark = state === 'passed' ? '✓' : '✗';
  return el('li', { class: `check-item tone-text-${state === 'passed' ? 'ok' : 'bad'}`, dataset: { testid: 'check', state, check: name } },
    el('span', { class: 'mark', 'aria-hidden': 'true', text: mark }), ' ',
    el('span', { class: 'check-name mono', text: name }), ' ',
    el('strong', { class: 'check-state', text: state }),
    detail.length ? el('span', { class: 'muted small' }, ' — ', ...detail) : null);
}

export function renderRelease(main, [service, version]) {
  document.title = `${service} ${version} · Flotilla`;
  const body = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
  main.append(el('div', { class: 'page-head' }, el('h1', { text: `Release ${service} ${version}` })), body);
  let alive = true;

  (async () => {
    let release;
    let deployments = [];
    try {
      const [r, list] = await Promise.all([getJson(paths.release(service, version)), getJson(paths.deployments())]);
      release = r;
      deployments = (list.deployments || []).filter((d) => d.service === service && d.version === version);
    } catch (err) {
      if (!alive) return;
      body.replaceChildren(el('p', { class: 'error', role: 'alert', text: `Could not load the release: ${errorText(err)}` }));
      return;
    }
    if (!alive) return;

    const checklist = el('ul', { class: 'checklist', dataset: { testid: 'checklist' } });
    const reported = new Map((release.checks || []).map((c) => [c.name, c]));
    // A check reported passed whose value misses an environment's threshold is failed there.
    const unmetWhy = new Map();
    for (const env of release.environments || []) {
      for (const c of env.checks || []) {
        if (!c.met && c.why !== 'not reported') unmetWhy.set(checkName(c.check), `${c.check}: ${c.why}`);
      }
    }
    for (const c of reported.values()) {
      const url = c.url ? safeUrl(c.url) : null;
      const why = c.passed ? unmetWhy.get(c.name) : null;
      checklist.append(item(c.passed && !why ? 'passed' : 'failed', c.name,
        why ? `reported passed, but ${why}; ` : '',
        c.value !== null && c.value !== undefined ? `value ${c.value}, ` : '',
        `reported by ${c.by || 'unknown'} `, timeEl(c.at, true),
        url ? el('span', {}, ' · ', el('a', { href: url, rel: 'noreferrer noopener', target: '_blank', text: 'CI run' })) : ''));
    }
    const missing = new Set();
    for (const env of release.environments || []) {
      for (const c of env.checks || []) {
        const name = checkName(c.check);
        if (!reported.has(name) && !missing.has(name)) {
          missing.add(name);
          checklist.append(item('missing', name, `required: ${c.check}`));
        }
      }
    }
    if (!checklist.childElementCount) {
      checklist.append(el('li', { class: 'muted', text: 'No check reported, and no environment requires one.' }));
    }

    const envRows = (release.environments || []).map((env) => {
      const unmet = (env.checks || []).filter((c) => !c.met).map((c) => `${c.check} (${c.why})`);
      const promo = env.promotion;
      return el('tr', { dataset: { testid: 'environment', environment: env.name } },
        el('th', { scope: 'row', text: env.name }),
        el('td', {}, badge(env.ready ? 'ready' : 'not ready')),
        el('td', { class: 'small', text: unmet.length ? unmet.join('; ') : 'every required check is met' }),
        el('td', { class: 'small', text: promo ? `${promo.met ? '✓' : '✗'} after ${promo.soak} in ${promo.from}${promo.missing ? `: ${promo.missing}` : ''}` : '—' }));
    });

    const succeeded = (release.succeeded || []).map((s) => el('li', {},
      `${s.environment}: `, link(deploymentHref(s.deployment), s.deployment), ' ', timeEl(s.at)));

    body.replaceChildren(
      el('section', { class: 'card', 'aria-labelledby': 'checks-title' },
        el('h2', { id: 'checks-title', text: 'Checklist' }), checklist),
      el('section', { class: 'card', 'aria-labelledby': 'envs-title' },
        el('h2', { id: 'envs-title', text: 'Environments' }),
        envRows.length
          ? el('div', { class: 'table-wrap' }, el('table', { class: 'grid', dataset: { testid: 'environments' } },
            el('thead', {}, el('tr', {}, ['Environment', 'Ready', 'Unmet', 'Promotion'].map((h) => el('th', { scope: 'col', text: h })))),
            el('tbody', {}, envRows)))
          : el('p', { class: 'muted', text: 'No policy names environments on this coordinator.' })),
      el('section', { class: 'card', 'aria-labelledby': 'deps-title' },
        el('h2', { id: 'deps-title', text: 'Deployments of this release' }),
        deployments.length
          ? el('ul', { dataset: { testid: 'release-deployments' } }, deployments.map((d) => el('li', {},
            link(deploymentHref(d.id), d.id, { class: 'mono' }), ' ', badge(d.state), ' ',
            el('span', { class: 'muted small' }, 'created ', timeEl(d.created_at, true)))))
          : el('p', { class: 'muted', text: 'Not deployed yet.' }),
        succeeded.length ? el('div', {}, el('h3', { text: 'Succeeded in' }), el('ul', {}, succeeded)) : null,
        release.artifact ? el('p', { class: 'small' }, 'Artifact ', el('span', { class: 'mono', text: release.artifact.digest }),
          ' built by ', link(deploymentHref(release.artifact.deployment), release.artifact.deployment)) : null),
      el('p', {}, link('#/log', 'Back to the deployment log')));
  })();
  return () => { alive = false; };
}
