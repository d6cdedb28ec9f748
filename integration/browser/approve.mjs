// (d) An approver approves the waiting production wave with the page's button: the button names
// the wave, the confirmation names the deployment and the wave, and after Confirm the wave starts.
// Before that, the same session's approve without the CSRF header is refused.
// Env: FLOTILLA_TOKEN (an approver's), FLOTILLA_DEPLOYMENT (awaiting approval), FLOTILLA_WAVE.
import { apiGet, check, go, login, scenario, waitFor, waitForState } from './lib.mjs';

const id = process.env.FLOTILLA_DEPLOYMENT;
const wave = process.env.FLOTILLA_WAVE;

await scenario('approve', async ({ page, report }) => {
  await login(page);
  report.whoami = (await page.locator('[data-testid=whoami]').textContent()).trim();
  await go(page, `#/deployments/${id}`);
  await waitForState(page, 'awaiting_approval');
  const button = page.locator('button[data-action=approve]');
  await button.waitFor();
  report.button = (await button.textContent()).trim();
  check(report.button === `Approve wave ${wave}`, `the approve button says "${report.button}"`);
  // An approver may approve, nothing else.
  report.other_buttons = await page.locator('button[data-action]:not([data-action=approve])')
    .evaluateAll((bs) => bs.map((b) => b.dataset.action));
  check(report.other_buttons.length === 0,
    `an approver sees buttons for: ${report.other_buttons.join(', ')}`);

  // The same session without the CSRF header: refused, nothing approved.
  report.without_csrf = await page.evaluate(async ({ id, wave }) => {
    const r = await fetch(`/api/v1/deployments/${id}/approve`, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ wave }),
    });
    return { status: r.status, body: await r.text() };
  }, { id, wave });
  check(report.without_csrf.status === 403,
    `an approve without the CSRF header: ${JSON.stringify(report.without_csrf)}`);
  const still = await apiGet(page, `/api/v1/deployments/${id}`);
  check(still.body.state === 'awaiting_approval',
    `after the approve without CSRF the deployment is ${still.body.state}`);

  await button.click();
  const dialog = page.locator('dialog[data-testid=confirm]');
  await dialog.waitFor();
  report.dialog = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  check(report.dialog.includes(id) && report.dialog.includes(wave),
    `the confirmation does not name ${id} and ${wave}: "${report.dialog}"`);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await waitFor('the dialog to close', async () => !(await dialog.isVisible()), 5000);
  const error = page.locator('[data-testid=action-error]');
  if (await error.count() > 0 && await error.first().isVisible()) {
    const text = (await error.first().textContent()).trim();
    check(text === '', `the approval failed on the page: ${text}`);
  }

  // The wave starts: the page leaves awaiting_approval and names the approver; the API agrees.
  report.state_after = await waitFor('the page to leave awaiting_approval', async () => {
    const s = (await page.locator('[data-testid=deployment-state]').textContent()).trim();
    return s !== 'awaiting_approval' && s;
  }, 15000);
  const approvals = page.locator(
    `section[data-testid=wave][data-wave="${wave}"] [data-testid=approvals]`);
  report.approvals = await waitFor('the approval to be shown on the wave', async () => {
    const text = (await approvals.first().textContent()).replace(/\s+/g, ' ').trim();
    return text.includes(report.whoami.replace(/ \(.*\)$/, '')) && text;
  }, 10000);
  await waitForState(page, 'succeeded', 60000);
  const detail = await apiGet(page, `/api/v1/deployments/${id}`);
  const waveJson = detail.body.waves.find((w) => w.name === wave);
  report.api_wave = { state: waveJson.state, approvals: waveJson.approvals };
  check(waveJson.state === 'succeeded', `the API says the wave is ${waveJson.state}`);
  check(await page.locator('button[data-action=approve]').count() === 0,
    'the approve button is still there after the wave started');
});
