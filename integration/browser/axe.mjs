// (f) axe-core on every page of the dashboard: login, overview, deployment, agents, release and
// log; no serious or critical violation on any.
// Env: FLOTILLA_DEPLOYMENT (a finished deployment), FLOTILLA_SERVICE, FLOTILLA_VERSION (its
// release).
import { check, env, go, log, scenario, seriousViolations } from './lib.mjs';

const id = process.env.FLOTILLA_DEPLOYMENT;
const service = process.env.FLOTILLA_SERVICE;
const version = process.env.FLOTILLA_VERSION;

// Each page, and what shows that it has drawn its data.
const pages = [
  ['overview', '#/', `tr[data-testid=deployment-row][data-id="${id}"]`],
  ['deployment', `#/deployments/${id}`, 'tr[data-testid=cluster]'],
  ['agents', '#/agents', 'tr[data-testid=agent-row]'],
  ['release', `#/releases/${service}/${version}`, 'ul[data-testid=checklist] li'],
  ['log', '#/log', '[data-testid=log] a'],
];

await scenario('axe', async ({ page, report }) => {
  report.violations = {};
  await page.goto(`${env.url}/`);
  await page.locator('form[data-testid=login]').waitFor();
  report.violations.login = await seriousViolations(page);

  await page.getByLabel('API token').fill(env.token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-testid=whoami]').waitFor();
  for (const [name, hash, drawn] of pages) {
    await go(page, hash);
    await page.locator(drawn).first().waitFor();
    // One <h1> and a <main> on each page, as the contract says.
    const shape = await page.evaluate(() => ({
      h1: document.querySelectorAll('h1').length, main: document.querySelectorAll('main').length,
    }));
    check(shape.h1 === 1 && shape.main === 1,
      `${name}: ${shape.h1} <h1> and ${shape.main} <main>, expected one each`);
    report.violations[name] = await seriousViolations(page);
    log(`${name}: ${report.violations[name].length} serious or critical violations`);
  }
  const bad = Object.entries(report.violations).filter(([, v]) => v.length > 0);
  check(bad.length === 0, bad.map(([name, v]) => `${name}: ${v.join('; ')}`).join(' | '));
});
