// A real browser walks the access portal: request -> approval by another user -> access ->
// expiry -> denied. Headless Chromium from Debian (/usr/bin/chromium) driven by playwright-core.
// Started by tests/portal_browser.rs with APP (the app's base URL), APP_HOST and the users'
// logins in the environment; prints PORTAL_OK when every step held, exits 1 otherwise.
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const APP = env('APP');
const APP_HOST = env('APP_HOST');
const [BOB, BOB_PW] = env('BOB').split(':');
const [ALICE, ALICE_PW] = env('ALICE').split(':');

function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
    '--no-proxy-server', `--host-resolver-rules=MAP ${APP_HOST} 127.0.0.1`,
  ],
});

async function signIn(page, url, login, password) {
  await page.goto(url);
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL((u) => u.hostname === APP_HOST), page.click('button[type="submit"], input[type="submit"]')]);
}

try {
  const bob = await (await browser.newContext()).newPage();
  await signIn(bob, `${APP}/admin/`, BOB, BOB_PW);
  check((await bob.textContent('h1')).includes('Elevated access required'), 'bob is refused /admin without a grant');

  await bob.click('#ask');
  check(bob.url().includes('/.jitgate/access'), 'the refusal links to the request form');
  await bob.fill('input[name="purpose"]', 'fix the sidebar');
  await bob.fill('input[name="ticket"]', 'INC-1234');
  await bob.fill('input[name="duration"]', '5s');
  await Promise.all([bob.waitForURL((u) => u.search.includes('msg=')), bob.click('form[action$="/request"] button[type="submit"]')]);
  check((await bob.content()).includes('waiting for approval'), 'bob asked: the request is pending');

  const alice = await (await browser.newContext()).newPage();
  await signIn(alice, `${APP}/.jitgate/access`, ALICE, ALICE_PW);
  const item = alice.locator('#queue li', { hasText: 'fix the sidebar' });
  check((await item.count()) === 1, "alice sees bob's request in her queue");
  await Promise.all([alice.waitForURL((u) => u.search.includes('msg=')), item.locator('button[value="approve"]').click()]);
  check((await alice.content()).includes('approved: it is active now'), 'alice approved it');

  const ok = await bob.goto(`${APP}/admin/`);
  check(ok.status() === 200, 'bob reaches /admin while the grant is active');
  check((await bob.content()).includes('x-forwarded-roles'), 'the app receives the grant header');

  // The grant lasts 5 s from approval: wait until /admin is refused, at most 12 s.
  const deadline = Date.now() + 12000;
  let status = 200;
  while (Date.now() < deadline && status === 200) {
    await new Promise((r) => setTimeout(r, 250));
    status = (await bob.goto(`${APP}/admin/`)).status();
  }
  check(status === 403, 'after expiry bob is refused again');
  check((await bob.textContent('h1')).includes('Elevated access required'), 'the page says why');
  console.log('PORTAL_OK');
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
