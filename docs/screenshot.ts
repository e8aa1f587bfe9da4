/**
 * Regenerates docs/dashboard.png: `npx tsx docs/screenshot.ts` starts a demo in a temp folder
 * (hub, site, customers), lets it run for a while, searches one wallet and photographs the page
 * in headless Chromium. `--url URL` photographs an already running dashboard instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startDemo } from '../simulators/fleet/demo.ts';
import { launchChromium } from '../test/e2e/chromium.ts';

const { values } = parseArgs({ options: { url: { type: 'string' }, 'warm-up-s': { type: 'string' }, out: { type: 'string' } } });
const out = values.out ?? new URL('./dashboard.png', import.meta.url).pathname;
const warmUpMs = Number(values['warm-up-s'] ?? '25') * 1000;

let url = values.url;
let stop = async () => {};
if (!url) {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-shot-'));
  const demo = await startDemo({ dataDir: dir, logger: pino({ level: 'silent' }), dashboardPort: 0, mqttPort: 0, host: '127.0.0.1', actionsPerS: 6 });
  url = demo.dashboardUrl;
  stop = async () => {
    await demo.close();
    rmSync(dir, { recursive: true, force: true });
  };
  console.log(`demo running at ${url}; warming up for ${warmUpMs / 1000} s`);
  await new Promise((r) => setTimeout(r, warmUpMs));
  // Show the whole page at work: wait (a while) for the overspending customer to be flagged.
  const until = Date.now() + 90_000;
  while (Date.now() < until && (await demo.source.snapshot()).flagged.length === 0) await new Promise((r) => setTimeout(r, 1000));
}

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 }, deviceScaleFactor: 1 });
  await page.goto(url);
  await page.locator('#conn', { hasText: 'live' }).waitFor();
  await page.waitForTimeout(3_000); // a few snapshots for the sparkline
  const wallet = await page.locator('#holds button.link, #settlements button.link').first().getAttribute('title').catch(() => null);
  if (wallet) {
    await page.fill('#account-id', wallet);
    await page.click('#account-form button');
    await page.waitForTimeout(500);
  }
  await page.screenshot({ path: out, fullPage: true });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
  await stop();
}
