// (g) A screenshot of the deployment page mid-canary, kept as a test artifact: taken once a
// cluster's weight shows 50% (its first analysis passed, so its charts have points).
// Env: FLOTILLA_CLUSTER (the canary's cluster), FLOTILLA_SCREENSHOT (the file to write).
import { check, go, login, mark, recordWeights, scenario, told, waitFor } from './lib.mjs';

const cluster = process.env.FLOTILLA_CLUSTER;
const shot = process.env.FLOTILLA_SCREENSHOT;

await scenario('canary-screenshot', async ({ page, report }) => {
  await login(page);
  await recordWeights(page);
  mark('ready');
  const id = await told('deployment-id');
  await go(page, `#/deployments/${id}`);
  const row = page.locator(`tr[data-testid=cluster][data-cluster="${cluster}"]`);
  await waitFor(`${cluster}'s weight to show 50%`,
    async () => (await row.locator('[data-testid=cluster-weight]').textContent()).trim() === '50%',
    120000);
  const points = page.locator(
    `figure[data-testid=charts][data-cluster="${cluster}"] circle[data-set=candidate]`);
  await waitFor('a candidate point in the charts', async () => (await points.count()) > 0, 5000);
  report.state = (await page.locator('[data-testid=deployment-state]').textContent()).trim();
  check(report.state === 'running', `mid-canary the page says ${report.state}`);
  await page.screenshot({ path: shot, fullPage: true });
  report.screenshot = shot;
  report.candidate_points = await points.count();
  mark('screenshot');
});
