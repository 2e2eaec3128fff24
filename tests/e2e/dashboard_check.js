// Drives Debian's Chromium (headless, through playwright-core) over the coordinator's dashboard
// for tests/e2e/dashboard_test.cc, and prints what it saw as one JSON line: the jobs shown with
// their state and step (twice, the second time once `watch_job`'s step moved or 30 s passed),
// console errors and uncaught page errors, whether the login form shows, whether any element
// or script a job's text could inject exists, and the address left in the bar.
//
// Usage: node dashboard_check.js '{"url": ..., "token": ..., "watch_job": ..., "screenshot": ...}'
'use strict';

const path = require('path');
const modules = process.env.STRATA_NPM_MODULES || '/usr/local/share/strata/npm/node_modules';
const {chromium} = require(path.join(modules, 'playwright-core'));

async function jobs(page) {
  return page.$$eval('[data-job-id]', (nodes) => Object.fromEntries(nodes.map((n) => [
    n.getAttribute('data-job-id'),
    {state: n.getAttribute('data-state'), step: Number(n.querySelector('.step').textContent),
     text: n.textContent}])));
}

async function main() {
  const args = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({
    executablePath: process.env.STRATA_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const out = {console_errors: [], page_errors: [], failed_requests: []};
  try {
    const context = await browser.newContext({ignoreHTTPSErrors: true,
                                              viewport: {width: 1280, height: 900}});
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
    page.on('pageerror', (e) => out.page_errors.push(String(e)));
    page.on('requestfailed', (r) => out.failed_requests.push(r.url()));
    const url = args.token ? `${args.url}#token=${encodeURIComponent(args.token)}` : args.url;
    await page.goto(url, {waitUntil: 'load'});
    if (!args.token) {
      await page.waitForSelector('#login:not([hidden])', {timeout: 15000});
      out.login_visible = true;
    } else {
      await page.waitForSelector('#main:not([hidden])', {timeout: 15000});
      await page.waitForFunction(() => document.querySelectorAll('[data-job-id]').length > 0,
                                 null, {timeout: 15000});
      out.first = await jobs(page);
      if (args.watch_job) {
        const before = out.first[args.watch_job] ? out.first[args.watch_job].step : -1;
        try {
          await page.waitForFunction(([id, step]) => {
            const node = document.querySelector(`[data-job-id="${id}"] .step`);
            return node !== null && Number(node.textContent) > step;
          }, [args.watch_job, before], {timeout: 30000, polling: 250});
        } catch (e) {
          out.watch_timeout = true;
        }
      }
      out.later = await jobs(page);
      out.workers = await page.$$eval('#workers tbody tr[data-worker]', (rows) =>
          rows.map((r) => r.getAttribute('data-worker')));
      out.curves = await page.$$eval('svg.curve polyline.loss', (lines) => lines.length);
      out.login_visible = await page.$eval('#login', (f) => !f.hidden);
    }
    out.images = await page.$$eval('img', (nodes) => nodes.length);
    out.injected = await page.evaluate(() => window.__strata_injected === true);
    out.address = page.url();
    if (args.screenshot) await page.screenshot({path: args.screenshot, fullPage: true});
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
