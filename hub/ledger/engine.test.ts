import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from './engine.ts';
import { LedgerError } from './errors.ts';
import type { SqliteLedgerStore } from './sqlite-store.ts';
import { manualClock, rid, tempLedger, walletId, type TempLedger } from './test-helpers.ts';
import { MAX_HOLD_MS } from './command.ts';
import type { ApprovedOutcome, Command, OfflinePurchaseCommand, Outcome, PurchaseCommand } from './types.ts';
import { verifyLedger } from './verify.ts';

const W1 = walletId(1);
const W2 = walletId(2);

let ledger: TempLedger;
let engine: Engine | undefined;

async function setup(options: Parameters<TempLedger['openEngine']>[0] = {}): Promise<Engine> {
  ledger = tempLedger();
  engine = await ledger.openEngine(options);
  await engine.openWallet(W1, 'EUR');
  await engine.openWallet(W2, 'EUR');
  await engine.openMerchant('shop', { currency: 'EUR' });
  return engine;
}

afterEach(async () => {
  await engine?.close().catch(() => undefined);
  engine = undefined;
  ledger?.cleanup();
});

const topup = (walletIdHex: string, amountMinor: number, requestId = rid()): Command => ({ kind: 'topup', requestId, walletId: walletIdHex, amountMinor, currency: 'EUR', source: 'cash' });
const purchase = (amountMinor: number, extra: Partial<PurchaseCommand> = {}): PurchaseCommand => ({
  kind: 'purchase',
  requestId: rid(),
  walletId: W1,
  merchantId: 'shop',
  amountMinor,
  currency: 'EUR',
  ...extra,
});

function approved(o: Outcome): ApprovedOutcome {
  if (o.status !== 'approved') throw new Error(`expected approval, got ${JSON.stringify(o)}`);
  return o;
}

async function balance(e: Engine, id: string): Promise<number> {
  return (await e.getAccount(id))?.balanceMinor ?? Number.NaN;
}

async function expectVerified(e: Engine): Promise<void> {
  const report = await verifyLedger(e.store);
  expect(report.firstDiscrepancy).toBeNull();
  expect(report.ok).toBe(true);
}

describe('Engine', () => {
  it('tops up, withdraws into in-transit, replies, then deposits to the merchant', async () => {
    const e = await setup();
    const t = approved(await e.submit(topup(W1, 1000)));
    expect(t.balanceAfterMinor).toBe(1000);
    const p = approved(await e.submit(purchase(300)));
    expect(p.balanceAfterMinor).toBe(700);
    // Replied after the withdrawal commit; the deposit comes in a later transaction.
    expect(await balance(e, '@in_transit:EUR')).toBe(300);
    await e.flush();
    expect(await balance(e, '@in_transit:EUR')).toBe(0);
    expect(await balance(e, 'shop')).toBe(300);
    expect(await balance(e, W1)).toBe(700);
    const report = await verifyLedger(e.store);
    expect(report.ok).toBe(true);
    expect(report.currencies).toEqual([
      { currency: 'EUR', issuedMinor: 1000, redeemedMinor: 0, walletsMinor: 700, merchantsMinor: 300, inTransitMinor: 0, holdsMinor: 0, feesMinor: 0 },
    ]);
  });

  it('declines insufficient funds, unknown accounts and currency mismatches as outcomes', async () => {
    const e = await setup();
    await e.openMerchant('kiosk-usd', { currency: 'USD' });
    await e.submit(topup(W1, 100));
    expect(await e.submit(purchase(101))).toMatchObject({ status: 'declined', code: 'insufficient_funds' });
    expect(await e.submit(purchase(5, { walletId: walletId(99) }))).toMatchObject({ status: 'declined', code: 'unknown_account' });
    expect(await e.submit(purchase(5, { merchantId: 'nobody' }))).toMatchObject({ status: 'declined', code: 'unknown_account' });
    expect(await e.submit(purchase(5, { merchantId: 'kiosk-usd' }))).toMatchObject({ status: 'declined', code: 'currency_mismatch' });
    expect(await e.submit(purchase(5, { currency: 'USD' }))).toMatchObject({ status: 'declined', code: 'currency_mismatch' });
    expect(await balance(e, W1)).toBe(100);
    await expectVerified(e);
  });

  it('answers a duplicate with the original outcome and never settles twice, across restarts', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const cmd = purchase(400);
    const first = await e.submit(cmd);
    const [a, b] = await Promise.all([e.submit(cmd), e.submit({ ...cmd })]);
    expect(a).toEqual(first);
    expect(b).toEqual(first);
    expect(await e.submit({ ...cmd, amountMinor: 1 })).toMatchObject({ status: 'declined', code: 'duplicate_mismatch' });
    // A decline is recorded too: the same id stays declined after the wallet could pay.
    const poor = purchase(5000);
    const declined = await e.submit(poor);
    expect(declined).toMatchObject({ status: 'declined', code: 'insufficient_funds' });
    await e.submit(topup(W1, 10_000));
    expect(await e.submit(poor)).toEqual(declined);
    await e.close();
    engine = await ledger.openEngine();
    expect(await engine.submit(cmd)).toEqual(first);
    expect(await engine.submit(poor)).toEqual(declined);
    await engine.flush();
    expect(await balance(engine, 'shop')).toBe(400);
    expect(await balance(engine, W1)).toBe(10_600);
    await expectVerified(engine);
  });

  it('duplicates inside one batch settle once', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const cmd = purchase(10);
    const outs = await Promise.all(Array.from({ length: 20 }, () => e.submit(cmd)));
    for (const o of outs) expect(o).toEqual(outs[0]);
    await e.flush();
    expect(await balance(e, 'shop')).toBe(10);
  });

  it('holds money in a cancellation window: a refund comes back from the holds until the release pays the merchant, then from the merchant', async () => {
    const clock = manualClock();
    const e = await setup({ clock: clock.now });
    await e.submit(topup(W1, 1000));
    const cancelled = purchase(200, { holdUntilMs: clock.now() + 60_000 });
    const late = purchase(100, { holdUntilMs: clock.now() + 60_000 });
    const kept = purchase(300, { holdUntilMs: clock.now() + 60_000 });
    expect(approved(await e.submit(cancelled)).holdUntilMs).toBe(clock.now() + 60_000);
    await e.submit(late);
    await e.submit(kept);
    expect(await balance(e, '@holds:EUR')).toBe(600);
    expect((await e.pendingHolds()).map((h) => h.amountMinor)).toEqual([200, 100, 300]);
    clock.advance(30_000);
    const refund = approved(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: cancelled.requestId }));
    expect(refund.balanceAfterMinor).toBe(600);
    expect(refund.amountMinor).toBe(200);
    expect(await e.releaseDueHolds()).toEqual({ releasedCount: 0 });
    // Past the window (the buyer's cancellation is the service's to refuse by then), not yet released:
    // a refund for goods never delivered still comes from the holds, and nothing is released twice.
    clock.advance(30_000);
    expect(approved(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: late.requestId })).balanceAfterMinor).toBe(700);
    expect(await e.releaseDueHolds()).toEqual({ releasedCount: 1 });
    expect(await balance(e, 'shop')).toBe(300);
    expect(await balance(e, '@holds:EUR')).toBe(0);
    expect(await e.pendingHolds()).toEqual([]);
    // Released: the merchant gives it back, once.
    expect(approved(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: kept.requestId })).balanceAfterMinor).toBe(1000);
    expect(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: kept.requestId })).toMatchObject({ status: 'declined', code: 'already_refunded' });
    expect(await balance(e, 'shop')).toBe(0);
    await expectVerified(e);
  });

  it('decided() waits for what was submitted before it, not for what comes after (flush() waits until idle)', async () => {
    const e = await setup({ maxBatch: 1 });
    await e.submit(topup(W1, 1000));
    const order: string[] = [];
    const first = e.submit(purchase(10)).then(() => order.push('first'));
    const decided = e.decided().then(() => order.push('decided'));
    const later = Array.from({ length: 20 }, () => e.submit(purchase(10)));
    const rest = Promise.all(later).then(() => order.push('later'));
    await Promise.all([first, decided, rest, e.flush()]);
    // One command a batch: decided() is answered after the first, before the rest are decided.
    expect(order).toEqual(['first', 'decided', 'later']);
  });

  it('settled() waits until what was submitted before it is deposited (the merchant credited), not for what comes after', async () => {
    const e = await setup({ maxBatch: 1 });
    await e.submit(topup(W1, 1000));
    const order: string[] = [];
    void e.submit(purchase(10));
    let shopWhenSettled: Promise<number> | undefined;
    const settled = e.settled().then(() => {
      order.push('settled');
      shopWhenSettled = balance(e, 'shop'); // (a read waits for the writer: what it sees grows meanwhile)
    });
    const later = Array.from({ length: 20 }, () => e.submit(purchase(10)));
    const rest = Promise.all(later).then(() => order.push('later'));
    await Promise.all([settled, rest, e.flush()]);
    expect(order).toEqual(['settled', 'later']);
    expect(await shopWhenSettled).toBeGreaterThanOrEqual(10);
    expect(await balance(e, 'shop')).toBe(210);
    await expectVerified(e);
  });

  it('refunds a settled purchase at most once (vending dispense failure)', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const p = purchase(250);
    await e.submit(p);
    await e.flush();
    const r1 = { kind: 'refund', requestId: rid(), originalRequestId: p.requestId } as const;
    expect(approved(await e.submit(r1)).balanceAfterMinor).toBe(1000);
    expect(await e.submit(r1)).toMatchObject({ status: 'approved' });
    expect(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: p.requestId })).toMatchObject({ code: 'already_refunded' });
    expect(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: rid() })).toMatchObject({ code: 'not_found' });
    const t = topup(W1, 5);
    await e.submit(t);
    expect(await e.submit({ kind: 'refund', requestId: rid(), originalRequestId: t.requestId })).toMatchObject({ code: 'not_refundable' });
    expect(await balance(e, 'shop')).toBe(0);
    await expectVerified(e);
  });

  it('refunds a purchase still in transit, in the same batch', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const p = purchase(250);
    const [po, ro] = await Promise.all([e.submit(p), e.submit({ kind: 'refund', requestId: rid(), originalRequestId: p.requestId })]);
    expect(po.status).toBe('approved');
    expect(approved(ro).balanceAfterMinor).toBe(1000);
    await e.flush();
    expect(await balance(e, 'shop')).toBe(0);
    await expectVerified(e);
  });

  it('splits a sub-merchant deposit with its parent mall and the fees account (integer, remainder to the shop)', async () => {
    const e = await setup();
    await e.openMerchant('mall', { currency: 'EUR' });
    await e.openMerchant('mall.cafe', { currency: 'EUR', parentId: 'mall', shareBps: 1250 });
    await e.submit(topup(W1, 10_000));
    await e.submit({ kind: 'purchase', requestId: rid(), walletId: W1, merchantId: 'mall.cafe', amountMinor: 999, currency: 'EUR', feeMinor: 10 });
    await e.flush();
    // net 989; mall gets floor(989 × 0.125) = 123; cafe 866; fees 10.
    expect(await balance(e, 'mall')).toBe(123);
    expect(await balance(e, 'mall.cafe')).toBe(866);
    expect(await balance(e, '@fees:EUR')).toBe(10);
    await expectVerified(e);
  });

  it('lets an offline upload overdraw, flags the wallet and says so', async () => {
    const e = await setup();
    await e.submit(topup(W1, 100));
    const o = approved(await e.submit({ kind: 'offline_purchase', requestId: rid(), walletId: W1, merchantId: 'shop', amountMinor: 150, currency: 'EUR' }));
    expect(o.overspent).toBe(true);
    expect(o.balanceAfterMinor).toBe(-50);
    expect((await e.flaggedAccounts()).map((a) => a.id)).toEqual([W1]);
    expect(await e.submit(purchase(1))).toMatchObject({ code: 'insufficient_funds' });
    await expectVerified(e);
  });

  it('transfers wallet to wallet and pays merchants out to clearing', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const tr = approved(await e.submit({ kind: 'transfer', requestId: rid(), fromWalletId: W1, toWalletId: W2, amountMinor: 400, currency: 'EUR' }));
    expect(tr.balanceAfterMinor).toBe(600);
    expect(await e.submit({ kind: 'transfer', requestId: rid(), fromWalletId: W1, toWalletId: W1, amountMinor: 1, currency: 'EUR' })).toMatchObject({ code: 'same_account' });
    await e.submit(purchase(100));
    await e.flush();
    expect(await balance(e, W2)).toBe(400);
    expect(await e.submit({ kind: 'payout', requestId: rid(), merchantId: 'shop', amountMinor: 101, currency: 'EUR' })).toMatchObject({ code: 'insufficient_funds' });
    expect(approved(await e.submit({ kind: 'payout', requestId: rid(), merchantId: 'shop', amountMinor: 100, currency: 'EUR' })).balanceAfterMinor).toBe(0);
    const report = await verifyLedger(e.store);
    expect(report.ok).toBe(true);
    expect(report.currencies[0]).toMatchObject({ issuedMinor: 1000, redeemedMinor: 100, walletsMinor: 900 });
  });

  it('reads a wallet history through its own postings, newest first, with a cursor', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    for (let i = 1; i <= 5; i++) await e.submit(purchase(i));
    const all = await e.history(W1, { limit: 10 });
    expect(all.map((h) => h.amountMinor)).toEqual([-5, -4, -3, -2, -1, 1000]);
    expect(all[5]?.entryKind).toBe('topup');
    const page = await e.history(W1, { limit: 2, beforeEntryId: all[1]?.entryId as number });
    expect(page.map((h) => h.amountMinor)).toEqual([-3, -2]);
    expect(await e.history(walletId(77))).toEqual([]);
    expect((await e.recentSettlements(3)).map((s) => s.amountMinor)).toEqual([5, 4, 3]);
  });

  it('commits queued commands in groups, never larger than maxBatch', async () => {
    const e = await setup({ maxBatch: 64 });
    await e.submit(topup(W1, 1_000_000));
    const before = e.stats;
    const outs = await Promise.all(Array.from({ length: 500 }, () => e.submit(purchase(1))));
    expect(outs.every((o) => o.status === 'approved')).toBe(true);
    const s = e.stats;
    expect(s.largestBatch).toBe(64);
    expect(s.batches - before.batches).toBeLessThanOrEqual(10);
    await e.flush();
    expect(await balance(e, 'shop')).toBe(500);
  });

  it('rejects a batch the store fails to commit, keeps nothing of it, and carries on', async () => {
    const e = await setup();
    await e.submit(topup(W1, 1000));
    const p1 = purchase(100);
    await e.submit(p1); // its deposit is pending for the next turn
    const store = e.store as SqliteLedgerStore;
    const real = store.commitBatch.bind(store);
    let failures = 1;
    store.commitBatch = async (w) => {
      if (failures-- > 0) throw new LedgerError('store_failed', 'injected disk error');
      return real(w);
    };
    const p2 = purchase(50);
    await expect(e.submit(p2)).rejects.toMatchObject({ code: 'store_failed' });
    expect(e.lastError).toMatchObject({ code: 'store_failed' });
    expect(await balance(e, W1)).toBe(900);
    // The retry with the same id settles once; the earlier pending deposit is not lost.
    expect(approved(await e.submit(p2)).balanceAfterMinor).toBe(850);
    await e.flush();
    expect(await balance(e, 'shop')).toBe(150);
    await expectVerified(e);
  });

  it('settles correctly with a tiny account cache (eviction) and without preloading', async () => {
    const e = await setup({ maxCachedAccounts: 3, preloadAccounts: false });
    const wallets = Array.from({ length: 20 }, (_, i) => walletId(100 + i));
    await e.openWallets(wallets, 'EUR');
    await Promise.all(wallets.map((w) => e.submit(topup(w, 100))));
    for (let round = 0; round < 3; round++) {
      const outs = await Promise.all(wallets.map((w) => e.submit(purchase(10, { walletId: w }))));
      expect(outs.map((o) => approved(o).balanceAfterMinor)).toEqual(wallets.map(() => 90 - 10 * round));
    }
    await e.close();
    engine = await ledger.openEngine({ maxCachedAccounts: 3 });
    expect(await balance(engine, wallets[7] as string)).toBe(70);
    expect(await balance(engine, 'shop')).toBe(600);
    await expectVerified(engine);
  });

  it('rejects malformed commands early (programmer errors)', async () => {
    const e = await setup();
    expect(() => e.submit({ ...purchase(1), requestId: 'ABC' })).toThrow(/requestId/);
    expect(() => e.submit(purchase(0))).toThrow(/amountMinor/);
    expect(() => e.submit(purchase(1.5))).toThrow(/amountMinor/);
    expect(() => e.submit(purchase(Number.MAX_SAFE_INTEGER + 1))).toThrow(/amountMinor/);
    expect(() => e.submit(purchase(10, { feeMinor: 11 }))).toThrow(/feeMinor/);
    expect(() => e.submit({ ...purchase(1), currency: 'eur' })).toThrow(/currency/);
    await expect(e.openWallet('xyz', 'EUR')).rejects.toThrow(TypeError);
    await expect(e.openWallet(W1, 'USD')).rejects.toMatchObject({ code: 'account_conflict' });
  });

  it('recovers withdrawn-not-deposited settlements after a stop right after the withdraw commit', async () => {
    const e = await setup({ hooks: { stopAfter: 'withdraw' } });
    engine = undefined;
    const t = topup(W1, 1000);
    expect(await e.submit(t)).toMatchObject({ status: 'approved' });
    // The engine stopped after that commit: nothing else goes through.
    await expect(e.submit(purchase(1))).rejects.toMatchObject({ code: 'engine_closed' });
    engine = await ledger.openEngine({ hooks: { stopAfter: 'withdraw' } });
    const p = purchase(300);
    expect(approved(await engine.submit(p)).balanceAfterMinor).toBe(700);
    const store = ledger.openStore();
    expect((await store.accountsById(['@in_transit:EUR'])).get('@in_transit:EUR')?.balanceMinor).toBe(300);
    expect((await verifyLedger(store)).ok).toBe(true);
    await store.close();
    engine = await ledger.openEngine();
    expect(await balance(engine, 'shop')).toBe(300);
    expect(await balance(engine, '@in_transit:EUR')).toBe(0);
    expect(approved(await engine.submit(p)).balanceAfterMinor).toBe(700);
    await expectVerified(engine);
  });

  it('recovers logged-not-withdrawn commands after a stop right after the log commit', async () => {
    const e = await setup({ hooks: { stopAfter: 'log' } });
    engine = undefined;
    const t = topup(W1, 1000);
    await expect(e.submit(t)).rejects.toMatchObject({ code: 'engine_closed' });
    engine = await ledger.openEngine();
    expect(await balance(engine, W1)).toBe(1000);
    // The retry gets the outcome decided by recovery.
    expect(approved(await engine.submit(t)).balanceAfterMinor).toBe(1000);
    expect((await engine.recentSettlements(1))[0]).toMatchObject({ status: 'approved', state: 'done' });
    await expectVerified(engine);
  });
});

describe('Engine, a hold given as a length (holdMs: seed 004 claim 13, a fixed period after the purchase)', () => {
  const WINDOW = 5 * 60_000;
  const offline = (amountMinor: number, extra: Partial<OfflinePurchaseCommand> = {}): OfflinePurchaseCommand => ({
    kind: 'offline_purchase',
    requestId: rid(),
    walletId: W1,
    merchantId: 'shop',
    amountMinor,
    currency: 'EUR',
    ...extra,
  });

  it('ends holdMs after the engine logged the command (its own clock): the outcome, the pending hold and the release agree', async () => {
    const clock = manualClock();
    const e = await setup({ clock: clock.now });
    await e.submit(topup(W1, 1000));
    clock.advance(7_000);
    const loggedAt = clock.now();
    const p = approved(await e.submit(purchase(300, { holdMs: WINDOW })));
    expect(p).toMatchObject({ atMs: loggedAt, holdUntilMs: loggedAt + WINDOW });
    const o = approved(await e.submit(offline(200, { holdMs: WINDOW })));
    expect(o.holdUntilMs).toBe(loggedAt + WINDOW);
    expect((await e.pendingHolds()).map((h) => [h.requestId, h.releaseAtMs])).toEqual([
      [p.requestId, loggedAt + WINDOW],
      [o.requestId, loggedAt + WINDOW],
    ]);
    expect(await e.releaseDueHolds(loggedAt + WINDOW - 1)).toEqual({ releasedCount: 0 });
    expect(await e.releaseDueHolds(loggedAt + WINDOW)).toEqual({ releasedCount: 2 });
    expect(await balance(e, 'shop')).toBe(500);
    await expectVerified(e);
  });

  it('a retry of the same command later gets the same outcome and hold (same content hash: not duplicate_mismatch); another length is another content', async () => {
    const clock = manualClock();
    const e = await setup({ clock: clock.now });
    await e.submit(topup(W1, 1000));
    const loggedAt = clock.now();
    const cmd = purchase(300, { holdMs: WINDOW });
    const first = approved(await e.submit(cmd));
    clock.advance(90_000);
    expect(await e.submit({ ...cmd })).toEqual(first);
    expect(first.holdUntilMs).toBe(loggedAt + WINDOW);
    expect(await e.submit({ ...cmd, holdMs: WINDOW + 1 })).toMatchObject({ status: 'declined', code: 'duplicate_mismatch' });
    expect(await e.submit({ ...cmd, holdMs: undefined, holdUntilMs: loggedAt + WINDOW })).toMatchObject({ status: 'declined', code: 'duplicate_mismatch' });
    expect(await balance(e, W1)).toBe(700);
    await expectVerified(e);
  });

  it('keeps the logged hold time across recovery after a stop right after the log commit (not the recovery time)', async () => {
    const clock = manualClock();
    ledger = tempLedger();
    let e = await ledger.openEngine({ clock: clock.now });
    await e.openWallet(W1, 'EUR');
    await e.openMerchant('shop', { currency: 'EUR' });
    await e.submit(topup(W1, 1000));
    await e.close();
    e = await ledger.openEngine({ clock: clock.now, hooks: { stopAfter: 'log' } });
    const loggedAt = clock.now();
    const cmd = purchase(300, { holdMs: WINDOW });
    await expect(e.submit(cmd)).rejects.toMatchObject({ code: 'engine_closed' });
    // Down for two minutes: recovery settles the logged row then.
    clock.advance(120_000);
    engine = await ledger.openEngine({ clock: clock.now });
    const retried = approved(await engine.submit(cmd));
    expect(retried.atMs).toBe(loggedAt + 120_000);
    expect(retried.holdUntilMs).toBe(loggedAt + WINDOW);
    expect((await engine.pendingHolds()).map((h) => h.releaseAtMs)).toEqual([loggedAt + WINDOW]);
    expect(await engine.releaseDueHolds(loggedAt + WINDOW - 1)).toEqual({ releasedCount: 0 });
    expect(await engine.releaseDueHolds(loggedAt + WINDOW)).toEqual({ releasedCount: 1 });
    expect(await balance(engine, 'shop')).toBe(300);
    await expectVerified(engine);
  });

  it('rejects a malformed length, and a length with an end (programmer errors)', async () => {
    const e = await setup();
    expect(() => e.submit(purchase(1, { holdMs: 0 }))).toThrow(/holdMs/);
    expect(() => e.submit(purchase(1, { holdMs: 1.5 }))).toThrow(/holdMs/);
    expect(() => e.submit(purchase(1, { holdMs: MAX_HOLD_MS + 1 }))).toThrow(/holdMs/);
    expect(() => e.submit(purchase(1, { holdMs: 1000, holdUntilMs: Date.now() }))).toThrow(/holdMs/);
    expect(() => e.submit(offline(1, { holdMs: -1 }))).toThrow(/holdMs/);
  });
});

describe('Engine, after the writer thread failed a batch', () => {
  /** Makes the writer's next journal entry collide: its id is taken from a second connection (an I/O error's stand-in). */
  function takeNextEntryId(file: string): number {
    const side = new Database(file);
    const next = (side.prepare('SELECT MAX(id) AS m FROM journal_entries').get() as { m: number }).m + 1;
    side.prepare("INSERT INTO journal_entries (id, seq, kind, currency, at_ms) VALUES (?, 0, 0, 'EUR', 0)").run(next);
    side.close();
    return next;
  }

  it('commits no batch decided on top of the failed one (a refund of a settled purchase), and the file stays balanced', async () => {
    ledger = tempLedger({ writerThread: true });
    const e = await ledger.openEngine({ maxBatch: 5 });
    engine = e;
    await e.openWallet(W1, 'EUR');
    await e.openMerchant('shop', { currency: 'EUR' });
    await e.submit(topup(W1, 10_000));
    const p0 = purchase(100);
    await e.submit(p0);
    await e.flush();
    const taken = takeNextEntryId(ledger.file);
    // Five rows: the writer thread commits them (and fails); the refund is decided on top of them.
    const n = Array.from({ length: 5 }, () => e.submit(purchase(1000)));
    const b = e.submit({ kind: 'refund', requestId: rid(), originalRequestId: p0.requestId });
    const settledN = await Promise.allSettled(n);
    const [settledB] = await Promise.allSettled([b]);
    await e.close().catch(() => undefined);
    engine = undefined;

    expect(settledN.map((s) => s.status)).toEqual(Array(5).fill('rejected'));
    // not_committed when decided on top of the failed batch (the case at stake); engine_closed
    // when the writer failed first (a loaded machine) and the refund was still queued.
    expect(settledB.status).toBe('rejected');
    expect(['not_committed', 'engine_closed']).toContain((settledB as PromiseRejectedResult).reason?.code);
    const side = new Database(ledger.file);
    side.prepare('DELETE FROM journal_entries WHERE id = ?').run(taken); // the stand-in fault, not the ledger's
    side.close();
    const store = ledger.openStore();
    try {
      expect((await verifyLedger(store)).firstDiscrepancy).toBeNull();
      expect((await store.accountsById([W1])).get(W1)?.balanceMinor).toBe(9_900);
    } finally {
      await store.close();
    }
  });
});
