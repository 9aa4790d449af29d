// Drives Debian's Chromium through playwright-core: loads the test page, reads back what
// rendered, screenshots it, reloads, waits past a short-lived URL's exp and loads it again.
// Usage: node check.mjs CONFIG.json   (pageUrl, expiredPageUrl, screenshot); the page names
// the short-lived URL's exp in <meta name="short-lived-exp">.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 760 } })).newPage();
  const settle = async () => {
    await page.waitForFunction(() => window.__done === true, null, { timeout: 20000 });
    return page.evaluate(() => window.__results);
  };
  await page.goto(config.pageUrl);
  const first = await settle();
  await page.screenshot({ path: config.screenshot, fullPage: true });
  await page.reload();
  const reload = await settle();
  const expiresAt = Number(await page.getAttribute('meta[name="short-lived-exp"]', 'content'));
  const wait = expiresAt * 1000 + 1500 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  await page.goto(config.expiredPageUrl);
  const afterExpiry = await settle();
  console.log(JSON.stringify({ first, reload, afterExpiry }));
} finally {
  await browser.close();
}
