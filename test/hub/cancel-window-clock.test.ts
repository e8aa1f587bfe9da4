// seed 004 claim 13: a cancellation window is "a fixed period after the purchase". Online, the
// purchase is when the ledger logs it, by the hub's own clock: a terminal's or wallet's clock that
// is slow (within the allowed skew, 5 minutes) must neither shorten the window nor make the hold
// due on arrival. The window's end is kept in the ledger's row: a retry, a recovery after a crash
// between log and settlement, the release and the cancel all use it. Real hub, real SQLite.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LedgerError } from '../../hub/ledger/errors.ts';
import { createHub } from '../../hub/service/hub.ts';
import {
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
const WINDOW = 5 * MIN;
const SCARF = [{ sku: 'scarf', qty: 1, unitMinor: 1000 }];
let fx: HubFixture;
let pos: TestTerminal;

beforeEach(async () => {
  fx = await openHubFixture();
  pos = await enroll(fx.hub, 'pos-outfit', 'pos', 'outfitters');
  fx.hub.importCatalog({ merchantId: 'outfitters', articles: [{ sku: 'scarf', name: 'Scarf', priceMinor: 1000, currency: 'EUR', cancelWindowMs: WINDOW }] });
});
afterEach(async () => {
  vi.restoreAllMocks();
  expect((await fx.hub.verifyLedger()).discrepancies).toEqual([]);
  await fx.cleanup();
});

const balance = async (id: string) => (await fx.hub.showAccount(id))?.account.balanceMinor ?? NaN;
/** Sent from devices whose clocks are `slowMs` behind the hub's. */
const cancel = async (w: TestWallet, requestId: string, slowMs: number) =>
  readResult(fx.hub, await fx.hub.handleRequest(pos.id, signRequest(pos, { type: 'cancel', cancellation: cancellation(w, requestId, fx.now - slowMs) }, fx.now - slowMs).bytes));
const held = async () => new Map((await fx.hub.engine.pendingHolds(100)).map((h) => [h.requestId, h.releaseAtMs]));

describe('the cancellation window of an online purchase runs from the hub’s logging time', () => {
  it('terminal and wallet clocks 4 minutes slow: the full window — cancelled at its end − 1 s (buyer and operator), refused at its end', async () => {
    const w = await fundedWallet(fx, pos, 10_000);
    const slow = 4 * MIN;
    const loggedAt = fx.now;
    const a = purchase(pos, w, SCARF, fx.now - slow);
    const b = purchase(pos, w, SCARF, fx.now - slow);
    const c = purchase(pos, w, SCARF, fx.now - slow);
    for (const sale of [a, b, c]) {
      expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'approved', time: loggedAt, holdUntil: loggedAt + WINDOW });
    }
    fx.advance(WINDOW - 1000);
    expect(await cancel(w, a.requestId, slow)).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await fx.hub.cancel(b.requestId)).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await balance(w.id)).toBe(10_000 - 1000);
    fx.advance(1000);
    expect(await cancel(w, c.requestId, slow)).toMatchObject({ status: 'declined', code: 'CANCEL_WINDOW_CLOSED' });
    await expect(fx.hub.cancel(c.requestId)).rejects.toMatchObject({ code: 'CANCEL_WINDOW_CLOSED' });
    await fx.hub.releaseDueHolds();
  });

  it('the hold is released at logging time + window, not earlier — also with clocks as slow as the skew allows (it was due on arrival)', async () => {
    const w = await fundedWallet(fx, pos, 10_000);
    const loggedAt = fx.now;
    const slow4 = purchase(pos, w, SCARF, fx.now - 4 * MIN);
    const slow5 = purchase(pos, w, SCARF, fx.now - 5 * MIN);
    for (const sale of [slow4, slow5]) expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes)).holdUntil).toBe(loggedAt + WINDOW);
    expect(await fx.hub.releaseDueHolds()).toEqual({ releasedCount: 0 });
    fx.advance(WINDOW - 1);
    expect(await fx.hub.releaseDueHolds()).toEqual({ releasedCount: 0 });
    expect([...(await held()).values()]).toEqual([loggedAt + WINDOW, loggedAt + WINDOW]);
    expect(await balance('outfitters')).toBe(0);
    fx.advance(1);
    expect(await fx.hub.releaseDueHolds()).toEqual({ releasedCount: 2 });
    await fx.hub.engine.settled();
    expect(await balance('outfitters')).toBe(2000);
  });
});

describe('an offline sale’s window runs from the sale (its signed times), never from after its upload', () => {
  it('a kiosk clock a day ahead of the hub’s: the window runs from the logging (the sale was no later than its upload)', async () => {
    const w = await fundedWallet(fx, pos, 10_000, { offlineLimitMinor: 5000 });
    const loggedAt = fx.now;
    const sale = purchase(pos, w, SCARF, fx.now + 24 * 60 * MIN, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'approved', holdUntil: loggedAt + WINDOW });
    fx.advance(WINDOW);
    expect(await cancel(w, sale.requestId, 0)).toMatchObject({ status: 'declined', code: 'CANCEL_WINDOW_CLOSED' });
    expect(await fx.hub.releaseDueHolds()).toEqual({ releasedCount: 1 });
  });

  it('a sale 2 minutes before its upload: held until 5 minutes after the sale, by the signed times, as before', async () => {
    const w = await fundedWallet(fx, pos, 10_000, { offlineLimitMinor: 5000 });
    fx.advance(10 * MIN); // the catalog was in force at the sale
    const soldAt = fx.now - 2 * MIN;
    const sale = purchase(pos, w, SCARF, soldAt, { offline: true });
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'approved', holdUntil: soldAt + WINDOW });
    fx.advance(3 * MIN);
    expect(await fx.hub.releaseDueHolds()).toEqual({ releasedCount: 1 });
  });
});

describe('the window’s end is the one the ledger logged', () => {
  it('a retry after its result was lost gets the same hold, approved (not DUPLICATE_MISMATCH), charged once', async () => {
    const w = await fundedWallet(fx, pos, 10_000);
    const slow = 4 * MIN;
    const powerCut = await registryLosesWhatFollows(fx, 'retry');
    const loggedAt = fx.now;
    const sale = purchase(pos, w, SCARF, fx.now - slow);
    const first = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(first).toMatchObject({ status: 'approved', holdUntil: loggedAt + WINDOW });
    await powerCut(); // the registry as before the sale (its stored result gone); the ledger kept it
    expect(fx.hub.registry.result(sale.requestId)).toBeUndefined();
    fx.advance(30_000);
    const retried = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(retried).toMatchObject({ status: 'approved', amountMinor: 1000, holdUntil: loggedAt + WINDOW });
    expect(await balance(w.id)).toBe(9000);
    expect([...(await held()).values()]).toEqual([loggedAt + WINDOW]);
    fx.advance(WINDOW - 30_000 - 1000);
    expect(await cancel(w, sale.requestId, slow)).toMatchObject({ status: 'approved', amountMinor: 1000 });
  });

  it('a retry whose first attempt never reached the ledger sends it the same command (the window’s length, not an end), logged then with the full window', async () => {
    const w = await fundedWallet(fx, pos, 10_000);
    const submit = vi.spyOn(fx.hub.engine, 'submit').mockRejectedValueOnce(new LedgerError('queue_full', 'test'));
    const sale = purchase(pos, w, SCARF, fx.now - 4 * MIN);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'declined', code: 'UNAVAILABLE' });
    fx.advance(30_000);
    const loggedAt = fx.now;
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'approved', holdUntil: loggedAt + WINDOW });
    expect(submit).toHaveBeenCalledTimes(2);
    expect(submit.mock.calls[1]?.[0]).toEqual(submit.mock.calls[0]?.[0]);
    expect(submit.mock.calls[0]?.[0]).toMatchObject({ kind: 'purchase', holdMs: WINDOW });
  });

  it('a crash between the ledger’s log and its settlement: recovery keeps the hold time of the log, not of the recovery', async () => {
    const w = await fundedWallet(fx, pos, 10_000);
    const slow = 3 * MIN;
    await fx.hub.close();
    // The engine commits the next batch's log rows and stops (a crash after the log write).
    (fx as { hub: HubFixture['hub'] }).hub = await createHub({ dataDir: fx.dir, clock: () => fx.now, holdReleaseIntervalMs: 0, engine: { hooks: { stopAfter: 'log' } } });
    const loggedAt = fx.now;
    const sale = purchase(pos, w, SCARF, fx.now - slow);
    expect(readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes))).toMatchObject({ status: 'declined', code: 'UNAVAILABLE' });
    fx.advance(90_000); // down for 1.5 minutes; recovery settles the logged purchase at the restart
    await fx.reopen();
    expect(await balance(w.id)).toBe(9000);
    const retried = readResult(fx.hub, await fx.hub.handleRequest(pos.id, sale.bytes));
    expect(retried).toMatchObject({ status: 'approved', amountMinor: 1000, holdUntil: loggedAt + WINDOW });
    expect([...(await held()).values()]).toEqual([loggedAt + WINDOW]);
    fx.advance(WINDOW - 90_000 - 1000);
    expect(await cancel(w, sale.requestId, slow)).toMatchObject({ status: 'approved', amountMinor: 1000 });
    expect(await balance(w.id)).toBe(10_000);
  });
});
