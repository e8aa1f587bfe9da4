/**
 * The dashboard page in a real headless Chromium, fed by the in-memory FixtureSource: values
 * render as text (never markup), the page updates over SSE when a settlement happens, and the
 * account search works. The same page against the real hub is in quick-start.test.ts.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixtureSource } from '../../hub/dashboard/fixture-source.ts';
import { startDashboard, type Dashboard } from '../../hub/dashboard/server.ts';
import { chromiumMissingReason, launchChromium } from './chromium.ts';

if (chromiumMissingReason) console.warn(`skipping dashboard browser test: ${chromiumMissingReason}`);

describe.skipIf(chromiumMissingReason !== null)('dashboard page in Chromium', () => {
  let browser: Browser;
  let dash: Dashboard;
  const source = new FixtureSource();
  const XSS = '<img src=x onerror="window.__pwned=1">';

  beforeAll(async () => {
    source.terminals = [
      { terminalId: 'gate-1', kind: 'gate', state: 'online', lastSeenMs: Date.now(), sinceMs: Date.now() },
      { terminalId: XSS, kind: '<b>pos</b>', state: 'offline', lastSeenMs: Date.now(), sinceMs: Date.now() },
    ];
    source.blocklist = ['f'.repeat(64)];
    source.incidents = [
      { requestId: 'e'.repeat(32), terminalId: 'gate-2', wallet: 'e'.repeat(64), kind: 'unsigned-passage', amountMinor: 300, currency: 'EUR', detail: XSS, timeMs: Date.now() },
    ];
    source.merchants = [{ id: 'kiosk-shop', balanceMinor: 123456, currency: 'EUR', terminals: 2 }];
    source.accounts.set('kiosk-shop', {
      id: 'kiosk-shop',
      kind: 'merchant',
      balanceMinor: 123456,
      currency: 'EUR',
      flagged: false,
      blocklisted: false,
      history: [{ requestId: 'c'.repeat(32), entryKind: 'deposit', amountMinor: 350, currency: 'EUR', atMs: Date.now() }],
    });
    source.settle({ requestId: 'a'.repeat(32), terminalId: 'gate-1', status: 'approved', amountMinor: 250, kind: 'fare' });
    dash = await startDashboard({ source, pushIntervalMs: 500, minPushGapMs: 50 });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await dash?.close();
  });

  it('renders real data as text, updates over SSE, and looks up an account', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(dash.url);
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    await expect.poll(() => page.textContent('#kpi-settled-total')).toBe('1');
    expect(await page.locator('#settlements tbody tr').count()).toBe(1);
    expect(await page.textContent('#settlements tbody')).toContain('2.50 EUR');
    expect(await page.textContent('#verify')).toContain('ledger verified');
    expect(await page.textContent('#blocklist-count')).toBe('1');
    expect(await page.textContent('#incidents-count')).toBe('1');
    expect(await page.textContent('#incidents tbody')).toContain('3.00 EUR');
    expect(await page.textContent('#incidents tbody')).toContain(`unsigned-passage: ${XSS}`);
    expect(await page.locator('#incidents img').count()).toBe(0);
    expect(await page.textContent('#kpi-terminals')).toBe('1 / 2');

    // XSS: the hostile terminal id shows as text; no element was created from it and nothing ran.
    expect(await page.textContent('#terminals tbody')).toContain(XSS);
    expect(await page.locator('#terminals img, #terminals b').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();

    // A settlement on the hub appears without a reload.
    source.settle({ requestId: 'd'.repeat(32), terminalId: 'pos-1', status: 'declined', code: 'INSUFFICIENT_FUNDS', amountMinor: 990 });
    await expect.poll(() => page.textContent('#kpi-declined-total')).toBe('1');
    await expect.poll(() => page.locator('#settlements tbody tr').count()).toBe(2);
    expect(await page.textContent('#declines tbody')).toContain('INSUFFICIENT_FUNDS');

    // Clicking a merchant opens its account and history.
    expect(await page.textContent('#merchants tbody')).toContain('1,234.56 EUR');
    await page.click('#merchants button.link');
    await expect.poll(() => page.textContent('#account-result')).toContain('1,234.56 EUR');
    expect(await page.inputValue('#account-id')).toBe('kiosk-shop');
    expect(await page.textContent('#account-result')).toContain('deposit');
    await page.fill('#account-id', 'nobody');
    await page.click('#account-form button');
    await expect.poll(() => page.textContent('#account-result')).toContain('no such account');
    expect(errors).toEqual([]);
  });
});
