// (c) A bad canary: once the page shows `rolled_back`, the rollback reason is at the top (an
// alert) and a chart of the failing cluster has a candidate point above its threshold line. axe
// then checks the page as it is, charts included.
// Env: FLOTILLA_CLUSTER (where the canary failed). The id comes from the test (told
// 'deployment-id').
import {
  chartData, check, go, login, mark, scenario, seriousViolations, told, waitFor, waitForState,
} from './lib.mjs';

const cluster = process.env.FLOTILLA_CLUSTER;

await scenario('canary-rollback', async ({ page, report }) => {
  await login(page);
  mark('ready');
  const id = await told('deployment-id');
  await go(page, `#/deployments/${id}`);
  await waitForState(page, 'rolled_back', 150000);
  const reason = page.locator('[data-testid=rollback-reason]');
  await reason.waitFor();
  report.reason_text = (await reason.textContent()).trim();
  report.reason_role = await reason.getAttribute('role');
  check(report.reason_role === 'alert', `the rollback reason's role is ${report.reason_role}`);

  // A point of the new version above the limit, on the error-rate or the latency chart.
  const above = (chart) => chart && chart.thresholds.length > 0 &&
    chart.candidate.some((p) => p.value > Math.max(...chart.thresholds));
  await waitFor(`a candidate point above a threshold line in ${cluster}'s charts`, async () => {
    report.charts = {
      error_rate: await chartData(page, cluster, 'chart-error-rate'),
      latency: await chartData(page, cluster, 'chart-latency'),
    };
    return above(report.charts.error_rate) || above(report.charts.latency);
  }, 10000);
  report.point_above = above(report.charts.error_rate) ? 'error_rate' : 'latency';

  report.axe = await seriousViolations(page);
  check(report.axe.length === 0,
    `axe on the rolled-back canary's page: ${report.axe.join('; ')}`);
});
