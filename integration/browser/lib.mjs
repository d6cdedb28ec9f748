// What every browser scenario shares: Debian's chromium through playwright-core, the login, the
// hand-shake with the C++ test that runs the scenario (tests/support/browser.hpp), and the report
// the test reads back.
//
// Environment (set by the C++ fixture):
//   FLOTILLA_URL        the coordinator, e.g. http://127.0.0.1:PORT
//   FLOTILLA_TOKEN      the API token to log in with
//   FLOTILLA_WORK       the scenario's own dir: report.json goes there, and the test "tells" the
//                       scenario things by writing files there (told())
//   FLOTILLA_ARTIFACTS  where screenshots are kept after the test (the build's test-artifacts)
//   FLOTILLA_CHROMIUM   the browser (default /usr/bin/chromium)
//   FLOTILLA_SCENARIO_TIMEOUT_MS  how long the whole scenario may take (default 120000)
// Lines "mark: WHAT" on stdout tell the test how far the scenario got (BrowserScenario::waitForMark).
import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const env = {
  url: required('FLOTILLA_URL'),
  token: process.env.FLOTILLA_TOKEN ?? '',
  work: required('FLOTILLA_WORK'),
  artifacts: process.env.FLOTILLA_ARTIFACTS ?? required('FLOTILLA_WORK'),
  chromium: process.env.FLOTILLA_CHROMIUM || '/usr/bin/chromium',
  timeoutMs: Number(process.env.FLOTILLA_SCENARIO_TIMEOUT_MS || 120000),
};

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`scenario: ${name} is not set (the C++ test sets it; see tests/support/browser.hpp)`);
    process.exit(2);
  }
  return value;
}

export class ScenarioFailure extends Error {}

// Fails the scenario with `message` unless `condition` holds.
export function check(condition, message) {
  if (!condition) throw new ScenarioFailure(message);
}

export function mark(what) {
  console.log(`mark: ${what}`);
}

export function log(text) {
  console.log(`scenario: ${text}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `probe` (async, returns a truthy value when done) every `intervalMs` until it returns
// something truthy, which is returned; fails naming `what` after `timeoutMs`.
export async function waitFor(what, probe, timeoutMs = 30000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) {
      throw new ScenarioFailure(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${
        JSON.stringify(last)})`);
    }
    await sleep(intervalMs);
  }
}

// What the test wrote to FLOTILLA_WORK/NAME (BrowserScenario::tell), once it is there.
export async function told(name, timeoutMs = 60000) {
  const path = join(env.work, name);
  await waitFor(`the test to write ${path}`, () => existsSync(path), timeoutMs, 50);
  return readFileSync(path, 'utf8').trim();
}

// Runs `body({browser, context, page, report})` against a fresh headless chromium, then writes
// FLOTILLA_WORK/report.json ({ok, error, ...what the body put in report}) and exits 0 when the body
// passed, 1 when it failed (a screenshot of the page then goes to FLOTILLA_ARTIFACTS). A
// Content-Security-Policy violation or an uncaught error in the page fails the scenario too
// (unless options.allowPageErrors, for the restart scenario, where they are only reported).
export async function scenario(name, body, options = {}) {
  const report = { scenario: name, ok: false, error: null, page_errors: [], csp_violations: [] };
  let browser;
  let page;
  const watchdog = setTimeout(() => {
    console.error(`scenario: ${name} ran past ${env.timeoutMs} ms`);
    finish(3);
  }, env.timeoutMs);
  const finish = (code) => {
    clearTimeout(watchdog);
    try {
      writeFileSync(join(env.work, 'report.json'), JSON.stringify(report, null, 2));
    } catch (e) {
      console.error(`scenario: cannot write the report: ${e.message}`);
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => {
    report.error = report.error ?? 'stopped by the test (SIGTERM)';
    if (browser) browser.close().finally(() => finish(4));
    else finish(4);
  });

  try {
    browser = await chromium.launch({ executablePath: env.chromium, headless: true });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(20000);
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = msg.text();
      if (/Content Security Policy/i.test(text)) report.csp_violations.push(text);
    });
    page.on('pageerror', (err) => report.page_errors.push(String(err && err.stack || err)));
    await body({ browser, context, page, report });
    check(report.csp_violations.length === 0,
      `Content-Security-Policy violations: ${report.csp_violations.join(' | ')}`);
    if (!options.allowPageErrors) {
      check(report.page_errors.length === 0,
        `uncaught errors in the page: ${report.page_errors.join(' | ')}`);
    }
    report.ok = true;
  } catch (e) {
    report.error = e instanceof ScenarioFailure ? e.message : String(e && e.stack || e);
    console.error(`scenario: ${name} FAILED: ${report.error}`);
    if (page) {
      try {
        mkdirSync(env.artifacts, { recursive: true });
        const shot = join(env.artifacts, `${name}-failure.png`);
        await page.screenshot({ path: shot, fullPage: true });
        console.error(`scenario: the page at the failure: ${shot}`);
      } catch {
        // The page may be gone with the failure; the report says what happened.
      }
    }
  }
  if (browser) await browser.close().catch(() => {});
  log(`${name}: ${report.ok ? 'passed' : 'failed'}`);
  finish(report.ok ? 0 : 1);
}

// ---- The dashboard, by the DOM contract (/work/.dashboard-contract.md) --------------------------

// Opens the dashboard at `/`, which must show the login form, and logs in with `token`; returns
// once the header names the session.
export async function login(page, token = env.token) {
  await page.goto(`${env.url}/`);
  const form = page.locator('form[data-testid=login]');
  await form.waitFor();
  await page.getByLabel('API token').fill(token);
  await form.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-testid=whoami]').waitFor();
}

// The session as the server sees it, asked from inside the page (its cookie): {status, body}.
export async function sessionFromPage(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/v1/session', { credentials: 'same-origin' });
    return { status: r.status, body: await r.json().catch(() => null) };
  });
}

// Goes to `hash` (e.g. '#/deployments/ID') the way a link does: no reload.
export async function go(page, hash) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
}

export async function deploymentState(page) {
  const state = page.locator('[data-testid=deployment-state]');
  if (await state.count() === 0) return '';
  return (await state.first().textContent() ?? '').trim();
}

// Waits until the deployment page shows `state`.
export async function waitForState(page, state, timeoutMs = 90000) {
  await waitFor(`the page to show the deployment ${state}`,
    async () => (await deploymentState(page)) === state, timeoutMs, 100);
}

// The API as the page's session sees it: GET `path` with the page's cookie.
export async function apiGet(page, path) {
  return page.evaluate(async (p) => {
    const r = await fetch(p, { credentials: 'same-origin' });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, path);
}

// A mark that lives as long as the document: a reload would lose it.
export async function plantMarker(page) {
  const marker = `flotilla-${Date.now()}-${Math.random()}`;
  await page.evaluate((m) => { window.flotillaTestMarker = m; }, marker);
  return marker;
}

// The marker is still there and the document was loaded exactly once.
export async function expectNoReload(page, marker, loads) {
  const seen = await page.evaluate(() => ({
    marker: window.flotillaTestMarker,
    navigations: performance.getEntriesByType('navigation').length,
    type: performance.getEntriesByType('navigation')[0]?.type,
  }));
  check(seen.marker === marker, `the page was reloaded: its marker is ${JSON.stringify(seen.marker)}`);
  check(seen.navigations === 1 && seen.type === 'navigate',
    `navigation entries: ${seen.navigations} (${seen.type}), expected one 'navigate'`);
  check(loads.count === 1, `the page loaded ${loads.count} times, expected once`);
  return seen;
}

// Counts the page's full loads (a reload is one more).
export function countLoads(page) {
  const loads = { count: 0 };
  page.on('load', () => { loads.count += 1; });
  return loads;
}

// Runs axe-core on the page as it is: the serious and critical violations, each
// "id (impact): help — targets".
export async function seriousViolations(page) {
  const { AxeBuilder } = await import('@axe-core/playwright');
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${
      v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(', ')}`);
}

// Records, from now on, every text each cluster's weight cell shows (consecutive repeats
// dropped), as the page draws it: window.flotillaWeightsSeen = {CLUSTER: ['—', '10%', ...]}. A
// MutationObserver sees each state the DOM passes through, however briefly.
export async function recordWeights(page) {
  await page.evaluate(() => {
    const seen = {};
    window.flotillaWeightsSeen = seen;
    const record = () => {
      for (const row of document.querySelectorAll('tr[data-testid=cluster]')) {
        const cell = row.querySelector('[data-testid=cluster-weight]');
        if (!cell) continue;
        const text = cell.textContent.trim();
        const list = (seen[row.dataset.cluster] ??= []);
        if (list[list.length - 1] !== text) list.push(text);
      }
    };
    new MutationObserver(record).observe(document.documentElement,
      { subtree: true, childList: true, characterData: true, attributes: true });
    record();
  });
}

// The weights (numbers) a cluster's cell showed, in order, repeats dropped.
export function weightsOf(texts) {
  const out = [];
  for (const t of texts ?? []) {
    const m = /^(\d+)\s*%$/.exec(t);
    if (m && out[out.length - 1] !== Number(m[1])) out.push(Number(m[1]));
  }
  return out;
}

// The points and threshold lines of one chart of the cluster's figure:
// {candidate: [{window, value}], stable: [...], thresholds: [value...]} (null when no such chart).
export async function chartData(page, cluster, chart) {
  const svg = page.locator(
    `figure[data-testid=charts][data-cluster="${cluster}"] svg[data-testid=${chart}]`);
  if (await svg.count() === 0) return null;
  return svg.first().evaluate((el) => {
    const points = (set) => [...el.querySelectorAll(`circle[data-set=${set}]`)].map((c) => ({
      window: Number(c.dataset.window), value: Number(c.dataset.value),
    }));
    return {
      candidate: points('candidate'),
      stable: points('stable'),
      thresholds: [...el.querySelectorAll('line[data-testid=threshold]')]
        .map((l) => Number(l.dataset.value)),
      label: el.getAttribute('aria-label') ?? el.querySelector('title')?.textContent ?? '',
    };
  });
}
