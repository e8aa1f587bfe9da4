// A deposit must never leave the safe integer range: the limit is checked at the withdrawal,
// against the payee's balance plus what is still on its way to it (deposits not yet posted).
// Otherwise the deposit's post throws in a later turn, and every turn after carries the same
// pending deposit and fails too (the ledger stalls).
import { afterEach, describe, expect, it } from 'vitest';
import { BatchBuilder, type SystemNums } from './batch.ts';
import type { Engine } from './engine.ts';
import { logRow, type LogRow } from './store.ts';
import { rid, tempLedger, walletId, type TempLedger } from './test-helpers.ts';
import type { Account, Command, OfflinePurchaseCommand } from './types.ts';
import { verifyLedger } from './verify.ts';

const MAX = Number.MAX_SAFE_INTEGER;
const W1 = walletId(1);
const W2 = walletId(2);

let ledger: TempLedger | undefined;
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.close().catch(() => undefined);
  engine = undefined;
  ledger?.cleanup();
  ledger = undefined;
});

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

describe('balance limit of a payee with deposits pending (engine)', () => {
  it('declines a withdrawal whose deposit would overflow the merchant, and the ledger keeps settling', async () => {
    ledger = tempLedger();
    const e = (engine = await ledger.openEngine());
    await e.openWallet(W1, 'EUR');
    await e.openWallet(W2, 'EUR');
    await e.openMerchant('shop', { currency: 'EUR' });
    const buy = (w: string, amountMinor: number, kind: 'purchase' | 'offline_purchase' = 'purchase'): Command => ({ kind, requestId: rid(), walletId: w, merchantId: 'shop', amountMinor, currency: 'EUR' });
    // W1 gets everything the float can issue and spends all but 40 at the shop (deposited).
    await e.submit({ kind: 'topup', requestId: rid(), walletId: W1, amountMinor: MAX, currency: 'EUR', source: 'cash' });
    await e.submit(buy(W1, MAX - 40));
    await within(e.settled(), 5000, 'settled');
    // One turn: W2 overdraws offline twice at that shop. Each alone fits its balance (MAX - 40);
    // both deposits (next turn) would not.
    const [first, second] = await Promise.all([e.submit(buy(W2, 30, 'offline_purchase')), e.submit(buy(W2, 11, 'offline_purchase'))]);
    expect(first).toMatchObject({ status: 'approved', overspent: true });
    expect(second).toMatchObject({ status: 'declined', code: 'balance_limit' });
    await within(e.settled(), 5000, 'settled');
    expect(e.lastError).toBeNull();
    expect((await e.getAccount('shop'))?.balanceMinor).toBe(MAX - 10);
    // Still settling: a payout makes room, then the same overdraft fits.
    expect(await e.submit({ kind: 'payout', requestId: rid(), merchantId: 'shop', amountMinor: 100, currency: 'EUR' })).toMatchObject({ status: 'approved' });
    expect(await e.submit(buy(W2, 11, 'offline_purchase'))).toMatchObject({ status: 'approved', overspent: true });
    await within(e.settled(), 5000, 'settled');
    expect((await e.getAccount('shop'))?.balanceMinor).toBe(MAX - 99);
    expect((await verifyLedger(e.store)).ok).toBe(true);
  });
  it('leaves a due hold held while its release would overflow the merchant, and releases it once a payout made room', async () => {
    ledger = tempLedger();
    const e = (engine = await ledger.openEngine());
    await e.openWallet(W1, 'EUR');
    await e.openWallet(W2, 'EUR');
    await e.openMerchant('shop', { currency: 'EUR' });
    const buy = (w: string, amountMinor: number, extra: Partial<OfflinePurchaseCommand> = {}): Command => ({ kind: 'offline_purchase', requestId: rid(), walletId: w, merchantId: 'shop', amountMinor, currency: 'EUR', ...extra });
    await e.submit({ kind: 'topup', requestId: rid(), walletId: W1, amountMinor: MAX, currency: 'EUR', source: 'cash' });
    await e.submit(buy(W1, MAX - 40));
    const untilMs = Date.now() + 1000;
    expect(await e.submit(buy(W2, 30, { holdUntilMs: untilMs }))).toMatchObject({ status: 'approved', holdUntilMs: untilMs });
    // Decided after the hold: fits the shop's balance (the hold is not the shop's yet).
    expect(await e.submit(buy(W2, 30))).toMatchObject({ status: 'approved' });
    await within(e.settled(), 5000, 'settled');
    expect((await e.getAccount('shop'))?.balanceMinor).toBe(MAX - 10);
    expect(await within(e.releaseDueHolds(untilMs), 5000, 'release')).toEqual({ releasedCount: 0 });
    expect(e.lastError).toBeNull();
    expect(await e.submit(buy(W2, 1))).toMatchObject({ status: 'approved' });
    expect(await e.submit({ kind: 'payout', requestId: rid(), merchantId: 'shop', amountMinor: 100, currency: 'EUR' })).toMatchObject({ status: 'approved' });
    expect(await within(e.releaseDueHolds(untilMs), 5000, 'release')).toEqual({ releasedCount: 1 });
    expect((await e.getAccount('shop'))?.balanceMinor).toBe(MAX - 10 + 1 - 100 + 30);
    expect((await verifyLedger(e.store)).ok).toBe(true);
  });
});

describe('BatchBuilder balance limit (pure)', () => {
  const sys: SystemNums = { float: 1, clearing: 2, in_transit: 3, holds: 4, fees: 5 };
  const account = (num: number, kind: Account['kind'], balanceMinor: number, extra: Partial<Account> = {}): Account => ({
    num,
    id: `a${num}`,
    kind,
    currency: 'EUR',
    balanceMinor,
    parentNum: null,
    shareBps: 0,
    flags: 0,
    createdMs: 0,
    ...extra,
  });
  const accounts = (): Map<number, Account> =>
    new Map(
      [
        account(1, 'float', -100),
        account(2, 'clearing', 0),
        account(3, 'in_transit', 0),
        account(4, 'holds', 0),
        account(5, 'fees', MAX - 50),
        account(10, 'wallet', 100),
        account(11, 'wallet', MAX - 20),
        account(20, 'merchant', MAX - 40),
        account(21, 'merchant', 0, { parentNum: 20, shareBps: 10_000 }),
      ].map((a) => [a.num, a]),
    );
  let seq = 0;
  const row = (kind: LogRow['kind'], payerNum: number, payeeNum: number, amountMinor: number, extra: Partial<LogRow> = {}): LogRow =>
    logRow({
      seq: ++seq,
      requestId: rid(),
      hash: '00',
      kind,
      payerNum,
      payeeNum,
      amountMinor,
      feeMinor: 0,
      currency: 'EUR',
      holdUntilMs: null,
      refSeq: null,
      memo: null,
      state: 'logged',
      code: null,
      entryId: null,
      balanceAfterMinor: null,
      atMs: 0,
      overspent: false,
      refundedBySeq: null,
      ...extra,
    });
  const builder = (incomingMinor = new Map<number, number>()): BatchBuilder =>
    new BatchBuilder({ nowMs: 0, nextSeq: 1000, nextEntryId: 1, accounts: accounts(), system: new Map([['EUR', sys]]), incomingMinor });

  it('counts deposits withdrawn earlier in the same batch', () => {
    const b = builder();
    expect(b.settle(row('offline_purchase', 10, 20, 30)).state).toBe('withdrawn');
    expect(b.settle(row('offline_purchase', 10, 20, 11)).code).toBe('balance_limit');
    expect(b.settle(row('offline_purchase', 10, 20, 10)).state).toBe('withdrawn');
  });

  it('counts deposits withdrawn in earlier batches not yet posted (incomingMinor)', () => {
    const b = builder(new Map([[20, 35]]));
    expect(b.settle(row('purchase', 10, 20, 6)).code).toBe('balance_limit');
    expect(b.settle(row('purchase', 10, 20, 5)).state).toBe('withdrawn');
    expect(b.pendingCreditsMinor.get(20)).toBe(5);
  });

  it('checks every credit leg: the parent share and the fee', () => {
    const b = builder();
    // Sub-merchant 21 passes all of its net to parent 20 (MAX - 40).
    expect(b.settle(row('purchase', 10, 21, 41)).code).toBe('balance_limit');
    // The fee goes to fees (MAX - 50).
    expect(b.settle(row('purchase', 10, 21, 60, { feeMinor: 51 })).code).toBe('balance_limit');
    expect(b.settle(row('purchase', 10, 21, 60, { feeMinor: 50 })).state).toBe('withdrawn');
  });

  it('counts a transfer on its way to a wallet against a top-up of it', () => {
    const b = builder();
    expect(b.settle(row('transfer', 10, 11, 15)).state).toBe('withdrawn');
    expect(b.settle(row('topup', 1, 11, 6)).code).toBe('balance_limit');
    expect(b.settle(row('topup', 1, 11, 5)).state).toBe('done');
  });

  it('declines a withdrawal that would overflow in-transit or the holds (not a failed batch)', () => {
    const big = accounts();
    big.set(3, account(3, 'in_transit', MAX - 5));
    big.set(4, account(4, 'holds', MAX - 5));
    big.set(20, account(20, 'merchant', 0));
    const b = new BatchBuilder({ nowMs: 0, nextSeq: 1000, nextEntryId: 1, accounts: big, system: new Map([['EUR', sys]]), incomingMinor: new Map() });
    expect(b.settle(row('purchase', 10, 20, 6)).code).toBe('balance_limit');
    expect(b.settle(row('purchase', 10, 20, 6, { holdUntilMs: 1 })).code).toBe('balance_limit');
    expect(b.settle(row('purchase', 10, 20, 5)).state).toBe('withdrawn');
  });
});
