// seed 004 claim 13: a buyer's cancellation inside the window does not depend on the stored result.
// That is written ~20 ms after the ledger's fsync and a power cut can take it (and it is pruned
// after 35 days): the hub then finds the sale in the ledger, as the operator's refund does —
// a purchase, paid by the cancelling wallet, with its hold time. Real hub, real SQLite files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SNACKS,
  cancellation,
  enroll,
  fundedWallet,
  openHubFixture,
  purchase,
  readResult,
  registryLosesWhatFollows,
  signRequest,
  type HubFixture,
  type TestTerminal,
  type TestWallet,
} from './kit.ts';

const MIN = 60_000;
const JACKET = [{ sku: 'jacket', qty: 1, unitMinor: 5000 }];
let fx: HubFixture;
let pos: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-shop', 'pos', 'snacks');
  fx.hub.importCatalog(SNACKS); // jacket: 15-minute window
});
afterAll(async () => {
  expect((await fx.hub.verifyLedger()).discrepancies).toEqual([]);
  await fx.cleanup();
});

const balance = async (w: TestWallet) => (await fx.hub.showAccount(w.id))?.account.balanceMinor ?? NaN;
const cancel = async (w: TestWallet, requestId: string) =>
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'cancel', cancellation: cancellation(w, requestId, fx.now) }, fx.now).bytes));

describe('a cancellation whose sale lost its stored result', () => {
  it('is refunded inside the window from what the ledger holds; refused for another wallet, a sale without window, and after the window', async () => {
    const buyer = await fundedWallet(fx, pos, 20_000);
    const other = await fundedWallet(fx, pos, 0);
    const powerCut = await registryLosesWhatFollows(fx, 'cancel');
    const jacket = purchase(pos, buyer, JACKET, fx.now);
    const late = purchase(pos, buyer, JACKET, fx.now);
    const offline = purchase(pos, buyer, JACKET, fx.now, { offline: true });
    const cola = purchase(pos, buyer, [{ sku: 'cola', qty: 1, unitMinor: 250 }], fx.now);
    for (const sale of [jacket, late, offline, cola]) expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).status).toBe('approved');
    await powerCut(); // the registry as before the sales; the ledger kept them
    for (const sale of [jacket, late, offline, cola]) expect(fx.hub.registry.result(sale.requestId)).toBeUndefined();
    fx.advance(5 * MIN);
    expect(await cancel(other, jacket.requestId)).toMatchObject({ status: 'declined', code: 'NOT_PERMITTED' });
    expect(await cancel(buyer, cola.requestId)).toMatchObject({ status: 'declined', code: 'NOT_CANCELLABLE' });
    expect(await cancel(buyer, jacket.requestId)).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(await cancel(buyer, offline.requestId)).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(await balance(buyer)).toBe(20_000 - 5000 - 250);
    expect(await cancel(buyer, jacket.requestId)).toMatchObject({ status: 'declined', code: 'ALREADY_REFUNDED' });
    fx.advance(10 * MIN);
    expect(await cancel(buyer, late.requestId)).toMatchObject({ status: 'declined', code: 'CANCEL_WINDOW_CLOSED' });
    // Never settled: not found.
    expect(await cancel(buyer, 'f'.repeat(32))).toMatchObject({ status: 'declined', code: 'NOT_FOUND' });
    await fx.hub.releaseDueHolds();
  });
});
