// The browser side of flotilla-bench-dashboard: Debian's chromium, headless, driven by
// playwright-core, on the coordinator's own dashboard. The benchmark program runs it as a child
// and talks to it one line each way (stdin / stdout); progress and the page's console go to
// stderr. The API token comes in FLOTILLA_BENCH_TOKEN (never on the command line).
//
//   node bench/dashboard_page.mjs live --url URL --id ID --ready-seq SEQ
//     Logs in, opens #/deployments/ID and waits until the page has shown event SEQ (the last one
//     committed before it opened). Prints `ready {json}`, then reads `until SEQ` on stdin, waits
//     until the page has shown every event up to that one, and prints `result {json}` with
//     window.flotillaEventTimes ({seq, shownAt}: performance.timeOrigin + performance.now() when
//     the page showed it, wall-clock ms).
//   node bench/dashboard_page.mjs load --url URL --id ID --waves N --runs R
//     R times, each in a fresh browser context (no HTTP cache, a new session): navigates to
//     #/deployments/ID and measures in the page, with the Performance API, from navigation start
//     (performance.now() = 0) to the deployment page rendered: `[data-testid=deployment-state]`
//     with its text and N `section[data-testid=wave]`, each with its counts per state
//     (`[data-testid=wave-counts]`) and its first page of cluster rows (DOM complete), and to
//     the frame after that painted. Prints `result {json}`.
//
// playwright-core is loaded from FLOTILLA_PLAYWRIGHT_DIR (a folder with node_modules), else
// from integration/browser (the browser tests' pinned packages). Chromium: CHROMIUM, else
// /usr/bin/chromium.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

function usage(message) {
  process.stderr.write(`dashboard_page: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const mode = argv[0];
  if (mode !== 'live' && mode !== 'load') usage('first argument must be live or load');
  const opts = { mode, waves: 1, runs: 1, readySeq: 0, timeoutMs: 120000 };
  const names = {
    '--url': 'url', '--id': 'id', '--waves': 'waves', '--runs': 'runs',
    '--ready-seq': 'readySeq', '--timeout-ms': 'timeoutMs',
  };
  for (let i = 1; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) usage(`unknown argument ${argv[i]}`);
    opts[key] = key === 'url' || key === 'id' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!opts.url || !opts.id) usage('--url and --id are required');
  opts.token = process.env.FLOTILLA_BENCH_TOKEN;
  if (!opts.token) usage('FLOTILLA_BENCH_TOKEN is not set');
  return opts;
}

function loadPlaywright() {
  const dirs = [process.env.FLOTILLA_PLAYWRIGHT_DIR, join(repo, 'integration', 'browser')];
  for (const dir of dirs.filter(Boolean)) {
    try {
      return createRequire(join(dir, 'package.json'))('playwright-core');
    } catch {
      // the next place
    }
  }
  usage(`playwright-core is in none of ${dirs.filter(Boolean).join(', ')} (npm ci there)`);
  return null;
}

function log(text) {
  process.stderr.write(`dashboard_page: ${text}\n`);
}

// A context logged in with the token: the session cookie (HttpOnly, SameSite=Strict) is in the
// context's cookie jar, so every page of the context is logged in.
async function loggedInContext(browser, opts) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const answer = await context.request.post(`${opts.url}/api/v1/session`, {
    data: { token: opts.token },
  });
  if (answer.status() !== 200) {
    throw new Error(`POST /api/v1/session: ${answer.status()} ${await answer.text()}`);
  }
  return context;
}

function watchConsole(page) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`page ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
}

// Installed before the page's own scripts (a DevTools script, so the page's CSP does not apply):
// resolves window.__flotillaBenchRendered once the deployment page is drawn.
function renderProbe(waves) {
  window.__flotillaBenchRendered = new Promise((resolve) => {
    const drawn = () => {
      const state = document.querySelector('[data-testid=deployment-state]');
      if (!state || state.textContent.trim() === '') return false;
      const sections = document.querySelectorAll('section[data-testid=wave]');
      if (sections.length < waves) return false;
      // A wave is drawn once it shows its counts per state and its first page of clusters.
      return [...sections].every((s) => {
        const counts = s.querySelector('[data-testid=wave-counts]');
        return counts !== null && counts.textContent.trim() !== '' &&
          s.querySelector('tr[data-testid=cluster]') !== null;
      });
    };
    const done = () => {
      const dom = performance.now();
      // rAF runs before the frame is painted; a task queued from it runs after.
      requestAnimationFrame(() => setTimeout(() => resolve({ dom, painted: performance.now() }), 0));
    };
    const observer = new MutationObserver(() => {
      if (drawn()) {
        observer.disconnect();
        done();
      }
    });
    observer.observe(document, { subtree: true, childList: true, characterData: true });
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function measureLoad(browser, opts) {
  const runs = [];
  for (let run = 0; run < opts.runs; ++run) {
    const context = await loggedInContext(browser, opts);
    await context.addInitScript(renderProbe, opts.waves);
    const page = await context.newPage();
    watchConsole(page);
    await page.goto(`${opts.url}/#/deployments/${encodeURIComponent(opts.id)}`);
    await withTimeout(page.evaluate(() => window.__flotillaBenchRendered), opts.timeoutMs,
      'the deployment page was not rendered');
    const figures = await page.evaluate(async () => {
      const r = await window.__flotillaBenchRendered;
      const nav = performance.getEntriesByType('navigation')[0];
      const api = performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/api/v1/'));
      const slowest = api.reduce((a, e) => (a && a.duration >= e.duration ? a : e), null);
      return {
        rendered_ms: r.dom,
        painted_ms: r.painted,
        dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
        load_event_ms: nav ? nav.loadEventEnd : null,
        api_requests: api.length,
        slowest_api: slowest
          ? { url: new URL(slowest.name).pathname + new URL(slowest.name).search, ms: slowest.duration }
          : null,
        dom_nodes: document.getElementsByTagName('*').length,
        state: document.querySelector('[data-testid=deployment-state]').textContent.trim(),
      };
    });
    log(`load run ${run}: rendered at ${figures.rendered_ms.toFixed(1)} ms, painted at ` +
        `${figures.painted_ms.toFixed(1)} ms (${figures.api_requests} API requests, ` +
        `${figures.dom_nodes} DOM nodes, state ${figures.state})`);
    runs.push(figures);
    await context.close();
  }
  return { runs };
}

// The next stdin line, or null at its end.
function lineReader() {
  const rl = createInterface({ input: process.stdin });
  const lines = [];
  const waiting = [];
  rl.on('line', (l) => (waiting.length ? waiting.shift()(l) : lines.push(l)));
  rl.on('close', () => { while (waiting.length) waiting.shift()(null); });
  return () => (lines.length ? Promise.resolve(lines.shift())
    : new Promise((resolve) => waiting.push(resolve)));
}

// The page's clock against node's (same host, same wall clock): the page's shownAt times are
// performance.timeOrigin + performance.now(); how far that is from Date.now().
async function clockSkew(page) {
  return page.evaluate(() => performance.timeOrigin + performance.now() - Date.now());
}

async function measureLive(browser, opts) {
  const nextLine = lineReader();
  const context = await loggedInContext(browser, opts);
  const page = await context.newPage();
  watchConsole(page);
  await page.goto(`${opts.url}/#/deployments/${encodeURIComponent(opts.id)}`);
  await page.waitForSelector('[data-testid=deployment-state]', { timeout: opts.timeoutMs });
  // Open once the page has shown the last event committed before it opened: from then on the
  // page is on the live stream.
  await page.waitForFunction((seq) => Array.isArray(window.flotillaEventTimes) &&
    window.flotillaEventTimes.some((e) => e.seq >= seq), opts.readySeq,
  { timeout: opts.timeoutMs, polling: 50 });
  const state = await page.textContent('[data-testid=deployment-state]');
  process.stdout.write(`ready ${JSON.stringify({ state: state.trim(), skew_ms: await clockSkew(page) })}\n`);

  const line = await nextLine();
  const m = /^until (\d+)$/.exec(line ?? '');
  if (!m) throw new Error(`expected "until SEQ", got ${line}`);
  const last = Number(m[1]);
  let complete = true;
  try {
    await page.waitForFunction((seq) => window.flotillaEventTimes.some((e) => e.seq >= seq), last,
      { timeout: opts.timeoutMs, polling: 100 });
  } catch {
    complete = false;
    log(`event ${last} not shown within ${opts.timeoutMs} ms`);
  }
  const result = await page.evaluate(() => ({
    times: window.flotillaEventTimes.map((e) => ({ seq: e.seq, shownAt: e.shownAt })),
    state: document.querySelector('[data-testid=deployment-state]')?.textContent.trim() ?? null,
    dom_nodes: document.getElementsByTagName('*').length,
  }));
  result.complete = complete;
  result.skew_ms = await clockSkew(page);
  await context.close();
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { chromium } = loadPlaywright();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
  });
  try {
    const result = opts.mode === 'load' ? await measureLoad(browser, opts)
      : await measureLive(browser, opts);
    process.stdout.write(`result ${JSON.stringify(result)}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  log(e.stack || String(e));
  process.exit(1);
});
