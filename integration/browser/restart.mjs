// (e) The coordinator is killed and restarted while the page follows a rollout: the page
// reconnects and, by the end, has seen exactly the events of the API's full list, none twice.
// The test tells 'deployment-id' once the page is ready, and 'restarted' once the coordinator is
// back.
import {
  apiGet, check, countLoads, expectNoReload, go, login, mark, plantMarker, scenario, told, waitFor,
  waitForState,
} from './lib.mjs';

// While the coordinator is down the page's requests fail; what it does with them is its own
// business (reported, not judged): only what it shows once it is back counts.
await scenario('restart', async ({ page, report }) => {
  const loads = countLoads(page);
  await login(page);
  const marker = await plantMarker(page);
  mark('ready');
  const id = await told('deployment-id');
  await go(page, `#/deployments/${id}`);
  await waitFor('the first events on the page',
    async () => (await page.locator('li[data-testid=event]').count()) > 0, 20000);
  report.seen_before_kill = await page.evaluate(() => [...(window.flotillaSeenSeqs ?? [])]);
  mark('watching');
  await told('restarted', 90000);
  await waitForState(page, 'succeeded', 90000);

  const all = await apiGet(page, `/api/v1/deployments/${id}/events`);
  check(all.status === 200, `the events from the page's session: ${JSON.stringify(all)}`);
  report.api_seqs = all.body.events.map((e) => e.seq);
  // The last events may still be on their way when the state shows.
  await waitFor('the page to have seen as many events as the API lists', async () =>
    (await page.evaluate(() => (window.flotillaSeenSeqs ?? []).length)) >= report.api_seqs.length,
  5000).catch(() => {});
  report.seen_seqs = await page.evaluate(() => [...(window.flotillaSeenSeqs ?? [])]);
  report.dom_seqs = await page.locator('li[data-testid=event]').evaluateAll(
    (items) => items.map((li) => Number(li.dataset.seq)));
  const twice = report.seen_seqs.filter((s, i) => report.seen_seqs.indexOf(s) !== i);
  check(twice.length === 0, `events seen twice: ${JSON.stringify(twice)}`);
  check(JSON.stringify(report.seen_seqs) === JSON.stringify(report.api_seqs),
    `the page saw seqs ${JSON.stringify(report.seen_seqs)}, the API lists ${
      JSON.stringify(report.api_seqs)}`);
  const domTwice = report.dom_seqs.filter((s, i) => report.dom_seqs.indexOf(s) !== i);
  check(domTwice.length === 0, `event log items shown twice: ${JSON.stringify(domTwice)}`);
  check(JSON.stringify(report.dom_seqs) === JSON.stringify(report.api_seqs.slice(-500)),
    `the event log shows seqs ${JSON.stringify(report.dom_seqs)}`);
  report.no_reload = await expectNoReload(page, marker, loads);
}, { allowPageErrors: true });
