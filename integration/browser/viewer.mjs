// (a) A viewer's session: no action buttons on a deployment waiting for approval; an approve
// forged from the page's own session is refused (403) with and without the CSRF header; logging
// out ends the session on the server.
// Env: FLOTILLA_TOKEN (a viewer's), FLOTILLA_DEPLOYMENT (awaiting approval), FLOTILLA_WAVE.
import { apiGet, check, go, login, mark, scenario, sessionFromPage, waitFor, waitForState }
  from './lib.mjs';

const id = process.env.FLOTILLA_DEPLOYMENT;
const wave = process.env.FLOTILLA_WAVE;

await scenario('viewer', async ({ context, page, report }) => {
  await login(page);
  report.whoami = (await page.locator('[data-testid=whoami]').textContent()).trim();
  check(report.whoami.includes('(viewer)'), `whoami says ${report.whoami}`);
  const session = await sessionFromPage(page);
  check(session.status === 200 && session.body.role === 'viewer',
    `GET /api/v1/session: ${JSON.stringify(session)}`);
  const cookie = (await context.cookies()).find((c) => c.name === 'flotilla_session');
  check(cookie, 'no flotilla_session cookie');
  check(cookie.httpOnly && cookie.sameSite === 'Strict',
    `the session cookie is not HttpOnly + SameSite=Strict: ${JSON.stringify(cookie)}`);
  report.cookie = cookie.value;
  check(await page.evaluate(() => document.cookie.includes('flotilla_session')) === false,
    'the page\'s script can read the session cookie');

  await go(page, `#/deployments/${id}`);
  await waitForState(page, 'awaiting_approval');
  await page.locator(`section[data-testid=wave][data-wave="${wave}"]`).waitFor();
  // The page had its data: give it a moment more to draw buttons, should it (wrongly) draw any.
  await page.waitForTimeout(500);
  report.action_buttons = await page.locator('button[data-action]').evaluateAll(
    (buttons) => buttons.map((b) => `${b.dataset.action}: ${b.textContent.trim()}`));
  check(report.action_buttons.length === 0,
    `a viewer sees action buttons: ${report.action_buttons.join(', ')}`);
  mark('looked');

  // Forged from the page's own origin and cookie: with the session's CSRF token, and without.
  report.forged = await page.evaluate(async ({ id, wave, csrf }) => {
    const send = async (headers) => {
      const r = await fetch(`/api/v1/deployments/${id}/approve`, {
        method: 'POST', credentials: 'same-origin', headers,
        body: JSON.stringify({ wave }),
      });
      return { status: r.status, body: await r.text() };
    };
    return {
      with_csrf: await send({ 'Content-Type': 'application/json', 'X-Flotilla-CSRF': csrf }),
      without_csrf: await send({ 'Content-Type': 'application/json' }),
    };
  }, { id, wave, csrf: session.body.csrf });
  check(report.forged.with_csrf.status === 403,
    `approve with the CSRF header: ${JSON.stringify(report.forged.with_csrf)}`);
  check(report.forged.without_csrf.status === 403,
    `approve without the CSRF header: ${JSON.stringify(report.forged.without_csrf)}`);
  const after = await apiGet(page, `/api/v1/deployments/${id}`);
  check(after.body && after.body.state === 'awaiting_approval',
    `after the forged approvals the deployment is ${after.body && after.body.state}`);

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('form[data-testid=login]').waitFor();
  report.session_after_logout = await waitFor('GET /api/v1/session to say 401',
    async () => { const s = await sessionFromPage(page); return s.status === 401 && s; }, 5000);
  check(!(await context.cookies()).some((c) => c.name === 'flotilla_session' && c.value),
    'the session cookie is still in the browser after logging out');
});
