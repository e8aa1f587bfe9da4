// An offline sale is priced by the catalog in force when the wallet authorized it: the goods left
// the machine at that price, and a price change or a removed article before the machine forwards
// it must not decline it (fares: the table in force at the exit). Online sales use the current one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNACKS, enroll, fundedWallet, openHubFixture, purchase, readResult, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

const HOUR = 3600_000;
let fx: HubFixture;
let pos: TestTerminal;
let vend: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-oc', 'pos', 'snacks');
  vend = await enroll(fx.hub, 'vend-oc', 'vending', 'snacks');
  fx.hub.importCatalog(SNACKS);
});
afterAll(async () => {
  const check = await fx.hub.verifyLedger();
  expect(check.discrepancies).toEqual([]);
  await fx.cleanup();
});

const funded = (amountMinor: number) => fundedWallet(fx, pos, amountMinor, { offlineLimitMinor: 1000 });

const balance = async (w: TestWallet) => (await fx.hub.showAccount(w.id))?.account.balanceMinor;
const repriced = (sku: string, priceMinor: number) => ({ ...SNACKS, articles: SNACKS.articles.map((a) => (a.sku === sku ? { ...a, priceMinor } : a)) });

describe('offline sales and catalog versions', () => {
  it('an offline sale forwarded after a price change settles at the price it was sold for; online sales pay the new one', async () => {
    const w = await funded(1000);
    const sale = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true });
    const known = fx.hub.registry.latestCatalog('snacks')!.version;
    fx.advance(HOUR);
    fx.hub.importCatalog(repriced('cola', 270));
    fx.advance(HOUR);
    // Sales authorized after the change, by a machine still offline: it had not heard of it and
    // sold at its old price. Named by the machine, that version prices them; without a version
    // the one in force at the authorization does, and it declines.
    const late = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true, catalogVersion: known });
    const unnamed = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true });
    fx.advance(HOUR);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, sale.bytes))).toMatchObject({ status: 'approved', amountMinor: 250 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, late.bytes))).toMatchObject({ status: 'approved', amountMinor: 250 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, unnamed.bytes))).toMatchObject({ status: 'declined', code: 'AMOUNT_MISMATCH' });
    expect(await balance(w)).toBe(500);
    const online = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, online.bytes))).toMatchObject({ status: 'declined', code: 'AMOUNT_MISMATCH' });
    // Online, the current catalog prices a sale, whatever version it names.
    const stale = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { catalogVersion: known });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, stale.bytes))).toMatchObject({ status: 'declined', code: 'AMOUNT_MISMATCH' });
    const current = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 270 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, current.bytes))).toMatchObject({ status: 'approved', amountMinor: 270 });
    expect(await balance(w)).toBe(230);
    fx.hub.importCatalog(SNACKS);
  });

  it('an offline sale of an article removed since, through two catalog changes, settles against the version of its time', async () => {
    const w = await funded(1000);
    const chips = purchase(vend, w, [{ sku: 'chips', qty: 2, unitMinor: 180 }], fx.now, { offline: true });
    fx.advance(HOUR);
    fx.hub.importCatalog({ ...SNACKS, articles: SNACKS.articles.filter((a) => a.sku !== 'chips') });
    fx.advance(HOUR);
    const cola = purchase(vend, w, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now, { offline: true });
    fx.advance(HOUR);
    fx.hub.importCatalog(repriced('cola', 300));
    fx.advance(HOUR);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, chips.bytes))).toMatchObject({ status: 'approved', amountMinor: 360 });
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, cola.bytes))).toMatchObject({ status: 'approved', amountMinor: 250 });
    expect(await balance(w)).toBe(390);
    // Online, a removed article is unknown.
    fx.hub.importCatalog({ ...SNACKS, articles: SNACKS.articles.filter((a) => a.sku !== 'chips') });
    const online = purchase(vend, w, [{ sku: 'chips', qty: 1, unitMinor: 180 }], fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(vend.id, online.bytes))).toMatchObject({ status: 'declined', code: 'UNKNOWN_ARTICLE' });
    fx.hub.importCatalog(SNACKS);
  });
});
