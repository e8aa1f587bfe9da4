// seed 004 claim 13 for sales decided without the hub: an offline sale of an article with a
// cancellation window gets its window from the wallet's authorization time. Still open when the
// upload arrives: the money is held and the buyer may cancel until it closes; already closed:
// settled straight through. Real hub, real SQLite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalCommand } from '../../hub/ledger/command.ts';
import { SNACKS, cancellation, enroll, fundedWallet, openHubFixture, purchase, readResult, signRequest, type HubFixture, type TestTerminal, type TestWallet } from './kit.ts';

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

const balance = async (id: string) => (await fx.hub.showAccount(id))?.account.balanceMinor ?? NaN;
const cancel = async (w: TestWallet, requestId: string) =>
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'cancel', cancellation: cancellation(w, requestId, fx.now) }, fx.now).bytes));

describe('offline sales with a cancellation window', () => {
  it('uploaded inside the window: held until the window closes (from the authorization), and the buyer may cancel', async () => {
    const w = await fundedWallet(fx, pos, 6000, { offlineLimitMinor: 6000 });
    const soldAt = fx.now;
    const sale = purchase(pos, w, JACKET, soldAt, { offline: true });
    fx.advance(5 * MIN);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 5000, holdUntil: soldAt + 15 * MIN });
    expect((await fx.hub.engine.pendingHolds(10)).map((h) => h.walletId)).toContain(w.id);
    fx.advance(5 * MIN);
    expect(await cancel(w, sale.requestId)).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(await balance(w.id)).toBe(6000);
  });

  it('held, not cancelled: the merchant is paid when the window closes; the buyer is refused after it', async () => {
    const w = await fundedWallet(fx, pos, 6000, { offlineLimitMinor: 6000 });
    const soldAt = fx.now;
    const sale = purchase(pos, w, JACKET, soldAt, { offline: true });
    fx.advance(10 * MIN);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).holdUntil).toBe(soldAt + 15 * MIN);
    const merchant = await balance('snacks');
    fx.advance(5 * MIN);
    expect(await cancel(w, sale.requestId)).toMatchObject({ status: 'declined', code: 'CANCEL_WINDOW_CLOSED' });
    await fx.hub.releaseDueHolds();
    await fx.hub.engine.flush();
    expect(await balance('snacks')).toBe(merchant + 5000);
  });

  it('an offline sale that overdraws is held too (flagged and blocklisted as ever); a cancel gives the money back', async () => {
    const w = await fundedWallet(fx, pos, 1000, { offlineLimitMinor: 6000 });
    const sale = purchase(pos, w, JACKET, fx.now, { offline: true });
    fx.advance(MIN);
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(r).toMatchObject({ status: 'approved', holdUntil: fx.now + 14 * MIN });
    expect(r.statement?.body.balanceMinor).toBe(-4000);
    expect(fx.hub.registry.isBlocklisted(w.id)).toBe(true);
    expect(await cancel(w, sale.requestId)).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(await balance(w.id)).toBe(1000);
    fx.hub.blocklistRemove(w.id);
  });

  it('uploaded after its window closed: settled straight through to the merchant, nothing held', async () => {
    const w = await fundedWallet(fx, pos, 6000, { offlineLimitMinor: 6000 });
    const sale = purchase(pos, w, JACKET, fx.now, { offline: true });
    fx.advance(20 * MIN);
    const merchant = await balance('snacks');
    const r = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(r).toMatchObject({ status: 'approved', amountMinor: 5000 });
    expect(r.holdUntil).toBeUndefined();
    await fx.hub.engine.flush();
    expect(await balance('snacks')).toBe(merchant + 5000);
    expect((await fx.hub.engine.pendingHolds(100)).map((h) => h.walletId)).not.toContain(w.id);
    expect(await cancel(w, sale.requestId)).toMatchObject({ status: 'declined', code: 'NOT_CANCELLABLE' });
  });
});

describe('the ledger command of an offline sale', () => {
  it('hashes as before without a hold (a retry of one a hub before this logged still matches); a hold is part of its content', () => {
    const base = { kind: 'offline_purchase' as const, requestId: 'a'.repeat(32), walletId: 'b'.repeat(64), merchantId: 'snacks', amountMinor: 5000, currency: 'EUR', memo: 'm' };
    expect(canonicalCommand(base)).toBe(JSON.stringify([1, 'offline_purchase', 'a'.repeat(32), 'b'.repeat(64), 'snacks', 5000, 'EUR', 0, 'm']));
    expect(canonicalCommand({ ...base, holdUntilMs: 1 })).not.toBe(canonicalCommand({ ...base, holdUntilMs: 2 }));
  });
});
