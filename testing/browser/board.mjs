// lumenize-board in a real browser: headless Chromium (the system's, driven by
// playwright-core) against the sandbox worker in workerd. Run by
// testing/harness/tests/board_browser.rs, which starts the worker and seeds the object:
//
//   node testing/browser/board.mjs <object URL> <token> test
//   node testing/browser/board.mjs <object URL> <token> screenshot <png path>
//   node testing/browser/board.mjs <caller URL> <token> calls <call id>
//
// `test` presses the buttons and checks, through the sandbox's own routes, that storage
// changed; it fails (exit 1) on the first check that does not hold. `calls` does the same
// for the pending calls of a sandbox `CallerDO` (lumenize-board with `Board::calls`): the
// call is shown, its hostile operation inert, and its Cancel button cancels it. The browser comes from
// CHROMIUM (default: `chromium` on the PATH, as `cargo xtask setup` installs it).
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const [base, token, mode, arg] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser || command -v google-chrome'], { encoding: 'utf8' }).trim();

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// The sandbox's own routes: storage as the library has it, not as the board shows it.
async function sandbox(route, body = {}) {
  const r = await fetch(`${base}/${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${route}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function until(what, f, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ httpCredentials: { username: 'operator', password: token }, viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const board = `${base}/board/`;

  if (mode === 'screenshot') {
    await page.goto(board);
    await page.locator('tr[data-id="nightly-report"] details summary').click();
    await page.screenshot({ path: arg, fullPage: true });
    console.log(`wrote ${arg}`);
  } else if (mode === 'calls') {
    const id = arg;
    const loaded = await page.goto(board);
    check(loaded.status() === 200, 'the page loads');
    const row = page.locator(`table.calls tr[data-id="${id}"]`);
    check(await row.count() === 1, 'the pending call is shown');
    check(await row.getAttribute('data-state') === 'awaiting', 'awaiting its result');
    const preview = await row.locator('code.payload').textContent();
    check(preview.includes('<script>alert(1)</script>') && preview.includes('onerror=alert(2)>'), `its hostile operation is shown as text: ${preview}`);
    check(dialogs.length === 0, `no dialog opened (${dialogs})`);
    check(await page.locator('script').count() === 0 && await page.locator('img').count() === 0, 'no script or img element');
    check(await page.locator('[onmouseover], [onerror]').count() === 0, 'no event-handler attribute');
    await Promise.all([page.waitForNavigation(), row.locator('button[data-op="cancel_call"]').click()]);
    check(new URL(page.url()).pathname.endsWith('/board/'), `back on the page: ${page.url()}`);
    check(!(await sandbox('pending')).some((c) => c.id === id), 'Cancel: no longer pending in storage');
    const ran = (await sandbox('continuations')).filter((c) => c.tag === 'hostile');
    check(ran.length === 1 && ran[0].result.Err && ran[0].result.Err.kind === 'cancelled', `Cancel: the continuation ran with Cancelled (${JSON.stringify(ran)})`);
    check(await page.locator(`table.calls tr[data-id="${id}"]`).count() === 0, 'Cancel: gone from the page');
    check(dialogs.length === 0 && errors.every((e) => !/Content Security Policy/.test(e)), `no dialog, no CSP violation (${errors})`);
  } else {
    // Without the credentials: 401, and no page.
    const anonymous = await browser.newContext();
    const refused = await anonymous.request.get(board);
    check(refused.status() === 401 && !(await refused.text()).includes('<table'), 'no credentials: 401, no page');
    const denied = await (await anonymous.newPage()).goto(board).then(() => 'loaded', (e) => e.message);
    check(/ERR_INVALID_AUTH_CREDENTIALS/.test(denied), `no credentials: the browser shows no page (${denied.split('\n')[0]})`);
    await anonymous.close();

    const loaded = await page.goto(board);
    check(loaded.status() === 200, 'the page loads');
    const csp = loaded.headers()['content-security-policy'] || '';
    check(csp.includes("default-src 'none'") && !csp.includes('unsafe-inline'), `a strict CSP: ${csp}`);
    // Every status, as the page shows it.
    for (const status of ['pending', 'running', 'paused', 'dead']) {
      check(await page.locator(`tbody tr[data-status="${status}"]`).count() > 0, `a ${status} task is shown`);
    }
    // The hostile strings are text: no script ran, no element came from them.
    check(dialogs.length === 0, `no dialog opened (${dialogs})`);
    check(await page.locator('script').count() === 0, 'no script element');
    check(await page.locator('img').count() === 0, 'no img element');
    check(await page.locator('[onmouseover], [onerror]').count() === 0, 'no event-handler attribute');
    const ids = await page.locator('tbody tr[data-id] .id').allTextContents();
    check(ids.includes('<script>alert(1)</script>') && ids.includes('"><img src=x onerror=alert(2)>'), 'hostile ids shown as their text');
    check(!(await page.evaluate(() => window.pwned)), 'the page global is untouched');

    // The cron task's next runs, in its row.
    const nightly = page.locator('tr[data-id="nightly"]');
    await nightly.locator('details summary').click();
    const runs = await nightly.locator('details li').allTextContents();
    check(runs.length === 5 && runs.every((r) => / 03:00:00\.000Z$/.test(r)), `five next runs at 03:00 UTC: ${runs}`);

    const row = (id) => page.locator(`tr[data-id="${id}"]`);
    const press = async (id, op) => {
      await Promise.all([page.waitForNavigation(), row(id).locator(`button[data-op="${op}"]`).click()]);
    };
    // Pause, resume.
    await press('later', 'pause');
    check((await sandbox('get', { id: 'later' })).status === 'paused', 'Pause: paused in storage');
    check(await row('later').getAttribute('data-status') === 'paused', 'Pause: the page shows it paused');
    await press('later', 'resume');
    check((await sandbox('get', { id: 'later' })).status === 'pending', 'Resume: pending in storage');
    // Run now: it runs at once (the sandbox records its firing) and, a one-shot, is gone.
    await press('later', 'run_now');
    await until('the run-now task to fire', async () => (await sandbox('fired')).some((f) => f.label === 'later'));
    await until('the run-now task to be removed', async () => (await sandbox('get', { id: 'later' })) === null);
    check(true, 'Run now: fired and removed');
    // Requeue one dead task: it fails once only, so it runs and succeeds.
    await press('dead-once', 'requeue');
    await until('the requeued task to fire again', async () => (await sandbox('fired')).filter((f) => f.label === 'dead-once').length === 2);
    check(true, 'Requeue: the dead task ran again');
    // Requeue all dead: the undecodable rows become pending again (and die again when they run).
    await page.goto(board);
    const before = (await sandbox('counts')).dead;
    const deaths = (await sandbox('events')).filter((e) => e.kind === 'dead').length;
    await Promise.all([page.waitForNavigation(), page.locator('button[data-op="requeue_dead"]').click()]);
    await until('the requeued rows to run (and die) again', async () => (await sandbox('events')).filter((e) => e.kind === 'dead').length >= deaths + before);
    check(before > 0, `Requeue all: ${before} dead tasks ran again`);
    // Cancel.
    await page.goto(board);
    await press('cancel-me', 'cancel');
    check((await sandbox('get', { id: 'cancel-me' })) === null, 'Cancel: gone from storage');
    check(await row('cancel-me').count() === 0, 'Cancel: gone from the page');
    check(dialogs.length === 0 && errors.every((e) => !/Content Security Policy/.test(e)) , `no dialog, no CSP violation (${errors})`);
  }
} finally {
  await browser.close();
}
