// (b) A good canary watched live: the page opens before the deployment is submitted, follows it
// to the end without a reload, and every cluster's weight cell shows 10%, 50%, 100% in that
// order; the page ends on `succeeded`.
// Env: FLOTILLA_CLUSTERS (comma-separated: the clusters whose weights must be seen). The
// deployment id comes from the test (told 'deployment-id') once the page is ready.
import {
  check, countLoads, expectNoReload, go, login, mark, plantMarker, recordWeights, scenario, told,
  waitForState, weightsOf,
} from './lib.mjs';

const clusters = (process.env.FLOTILLA_CLUSTERS ?? '').split(',').filter(Boolean);

await scenario('canary-live', async ({ page, report }) => {
  const loads = countLoads(page);
  await login(page);
  const marker = await plantMarker(page);
  await recordWeights(page);
  mark('ready');
  const id = await told('deployment-id');
  await go(page, `#/deployments/${id}`);
  await waitForState(page, 'succeeded', 150000);
  report.weights_seen = await page.evaluate(() => window.flotillaWeightsSeen);
  report.no_reload = await expectNoReload(page, marker, loads);
  report.events_shown = await page.locator('li[data-testid=event]').count();
  for (const cluster of clusters) {
    const weights = weightsOf(report.weights_seen[cluster]);
    const at = (w) => weights.indexOf(w);
    check(at(10) >= 0 && at(10) < at(50) && at(50) < at(100),
      `${cluster}: the weights shown were ${JSON.stringify(report.weights_seen[cluster])}, ` +
      'expected 10%, 50% and 100% in that order');
    check(weights.every((w, i) => i === 0 || w >= weights[i - 1]),
      `${cluster}: the weight went back down: ${JSON.stringify(weights)}`);
  }
});
