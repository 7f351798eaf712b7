// The hosted forms in a real browser: the system Chromium, headless, driven
// by playwright-core. Scenarios come from tests/e2e/browser.rs as JSON in
// CONNVAULT_BROWSER_INPUT (links it created, the throwaway PostgreSQL);
// the redirect the browser landed on is printed for the Rust side to verify.
// Exits non-zero, saying why, when anything is not as expected.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const input = JSON.parse(process.env.CONNVAULT_BROWSER_INPUT);
const AXE = require.resolve('axe-core/axe.min.js');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function context(javaScriptEnabled) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cv-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: input.chromium || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    javaScriptEnabled,
    // axe-core is injected: the page's own policy allows no script at all.
    bypassCSP: javaScriptEnabled,
  });
  // The partner's site is not on this machine: answer its redirect here.
  await ctx.route('https://app.example.com/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/plain', body: 'partner' }));
  return ctx;
}

async function axe(page, what) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run());
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe-core on ${what}: ${JSON.stringify(bad.map((v) => [v.id, v.impact, v.nodes.length]))}`);
  return result.violations.length;
}

async function heading(page) {
  return (await page.locator('h1').textContent()).trim();
}

async function main() {
  const shots = input.screenshots || '';
  const report = { checks: [] };
  const done = (what) => report.checks.push(what);

  // ---- JavaScript off: the whole create flow ----
  const noScript = await context(false);
  const page = await noScript.newPage();
  await page.goto(input.create);
  check((await heading(page)) === 'Connect PostgreSQL', `title: ${await heading(page)}`);
  // Every input has its label (what a screen reader announces).
  check((await page.getByLabel('Password', { exact: true }).count()) === 1, 'the password input has no label');
  check((await page.$$('script')).length === 0, 'the page has a script element');
  if (shots) await page.screenshot({ path: path.join(shots, 'forms-create.png'), fullPage: true });
  await page.locator('#display-name').fill('Orders');
  await page.locator('#field-host').fill('127.0.0.1');
  await page.locator('#field-port').fill(String(input.pg.port));
  await page.locator('#field-user').fill(input.pg.user);
  await page.locator('#field-password').fill('not-the-password');
  await page.getByRole('button', { name: 'Test connection' }).click();
  const failed = await page.locator('#test-title').textContent();
  check(failed.includes('refused the user name or password'), `wrong password said: ${failed}`);
  done('wrong password: friendly message');
  await page.locator('#field-password').fill(input.pg.password);
  await page.getByRole('button', { name: 'Test connection' }).click();
  const passed = await page.locator('#test-title').textContent();
  check(passed.includes('Connection test passed'), `test said: ${passed}`);
  const stages = await page.locator('.result li').allTextContents();
  check(stages.length > 0 && stages.every((s) => !s.includes('failed')), `stages: ${stages}`);
  done('test: every stage passed');
  if (shots) await page.screenshot({ path: path.join(shots, 'forms-test-result.png'), fullPage: true });
  await page.getByRole('button', { name: 'Save connection' }).click();
  await page.waitForURL('https://app.example.com/**');
  report.redirect = page.url();
  done('saved: redirected to the partner');
  // The link works once.
  await page.goto(input.create);
  check((await heading(page)) === 'This link has already been used', `reopened: ${await heading(page)}`);
  done('used link page');

  // Refusal pages.
  for (const [url, title] of [[input.expired, 'This link has expired'],
    [input.revoked, 'This link is no longer valid'], [input.tampered, 'This link is not valid']]) {
    await page.goto(url);
    check((await heading(page)) === title, `${url}: ${await heading(page)}`);
  }
  if (shots) await page.screenshot({ path: path.join(shots, 'forms-error.png'), fullPage: true });
  done('expired, revoked and tampered link pages');

  // The picker, by keyboard alone.
  await page.goto(input.picker);
  check((await heading(page)) === 'Choose a data source', `picker: ${await heading(page)}`);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForLoadState();
  check((await heading(page)) === 'Connect PostgreSQL', `after the picker: ${await heading(page)}`);
  done('picker, by keyboard');

  // A hostile display name and label are text, never markup.
  await page.goto(input.xss);
  const value = await page.locator('#display-name').inputValue();
  check(value === input.xss_name, `display name shown as ${value}`);
  check((await page.$$('script')).length === 0, 'a script element reached the page');
  done('hostile strings inert');
  await noScript.close();

  // ---- JavaScript on (for axe-core only): the form, a test result, errors ----
  const scripted = await context(true);
  const axePage = await scripted.newPage();
  await axePage.goto(input.axe_form);
  let minor = await axe(axePage, 'the form');
  await axePage.locator('#field-host').fill('');
  await axePage.getByRole('button', { name: 'Test connection' }).click();
  minor += await axe(axePage, 'the form with errors');
  await axePage.locator('#field-host').fill('127.0.0.1');
  await axePage.locator('#field-port').fill(String(input.pg.port));
  await axePage.locator('#field-user').fill(input.pg.user);
  await axePage.locator('#field-password').fill('wrong');
  await axePage.getByRole('button', { name: 'Test connection' }).click();
  minor += await axe(axePage, 'a test result');
  await axePage.goto(input.tampered);
  minor += await axe(axePage, 'an error page');
  done(`axe-core: no serious or critical violation (${minor} minor or moderate)`);
  await scripted.close();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((error) => {
  process.stderr.write(`FAIL: ${error.stack || error}\n`);
  process.exit(1);
});
