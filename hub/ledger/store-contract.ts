// The one contract every LedgerStore must pass (SQLite now, PostgreSQL later). Call it from a
// *.test.ts with a factory that can open the SAME store again (durability is part of the contract).
import { describe, expect, it } from 'vitest';
import { DuplicateRequestError } from './errors.ts';
import { systemAccountId } from './batch.ts';
import { emptyBatchWrite, logRow, type BatchWrite, type LedgerStore, type LogRow } from './store.ts';
import { SYSTEM_KINDS } from './types.ts';

export interface StoreFactory {
  /** Opens (creating on first call) the store under test; later calls reopen the same data. */
  open(): Promise<LedgerStore>;
  /** Removes everything the factory created. */
  cleanup(): Promise<void>;
}

const REQ = (n: number): string => n.toString(16).padStart(32, '0');

function row(seq: number, over: Partial<LogRow> = {}): LogRow {
  return logRow({
    seq,
    requestId: REQ(seq),
    hash: 'ab'.repeat(32),
    kind: 'topup',
    payerNum: null,
    payeeNum: null,
    amountMinor: 100,
    feeMinor: 0,
    currency: 'EUR',
    holdUntilMs: null,
    refSeq: null,
    memo: null,
    state: 'done',
    code: null,
    entryId: null,
    balanceAfterMinor: null,
    atMs: 1000 + seq,
    overspent: false,
    refundedBySeq: null,
    ...over,
  });
}

function write(parts: Partial<BatchWrite>): BatchWrite {
  return { ...emptyBatchWrite(), ...parts };
}

export function describeLedgerStoreContract(name: string, makeFactory: () => StoreFactory): void {
  describe(`LedgerStore contract: ${name}`, () => {
    async function withStore<T>(fn: (s: LedgerStore, f: StoreFactory) => Promise<T>): Promise<T> {
      const f = makeFactory();
      const s = await f.open();
      try {
        return await fn(s, f);
      } finally {
        await s.close();
        await f.cleanup();
      }
    }

    async function accounts(s: LedgerStore): Promise<{ float: number; wallet: number; transit: number }> {
      const float = await s.ensureAccount({ id: '@float:EUR', kind: 'float', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 1 });
      const transit = await s.ensureAccount({ id: '@in_transit:EUR', kind: 'in_transit', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 1 });
      const wallet = await s.ensureAccount({ id: 'a'.repeat(64), kind: 'wallet', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 1 });
      return { float: float.num, wallet: wallet.num, transit: transit.num };
    }

    /** A store with one committed top-up (REQ(1)), closed and opened again. */
    async function reopenedAfterTopup(f: StoreFactory): Promise<{ s: LedgerStore; a: { float: number; wallet: number; transit: number } }> {
      const first = await f.open();
      const a = await accounts(first);
      await first.commitBatch(topupWrite(1, 1, a, 100));
      await first.close();
      return { s: await f.open(), a };
    }

    function topupWrite(seq: number, entryId: number, a: { float: number; wallet: number }, walletAfter: number): BatchWrite {
      return write({
        logInserts: [row(seq, { payerNum: a.float, payeeNum: a.wallet, entryId, balanceAfterMinor: walletAfter })],
        entries: [{ id: entryId, seq, kind: 'topup', currency: 'EUR', atMs: 5 }],
        postings: [
          { entryId, accountNum: a.float, amountMinor: -100 },
          { entryId, accountNum: a.wallet, amountMinor: 100 },
        ],
        balances: new Map([
          [a.float, -walletAfter],
          [a.wallet, walletAfter],
        ]),
        settledThroughSeq: seq,
      });
    }

    it('logCheckPage: log rows after a seq, paged, with their entry, payer and payee postings and open hold', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        await s.commitBatch(topupWrite(1, 1, a, 100));
        await s.commitBatch(write({ logInserts: [row(2, { state: 'declined', code: 'unknown_account' })], settledThroughSeq: 2 }));
        const [topup, declined] = await s.logCheckPage(0, 10);
        expect(topup).toMatchObject({ seq: 1, kind: 'topup', state: 'done', entryId: 1, entrySeq: 1, entryKind: 'topup', entryCurrency: 'EUR', payerLegMinor: -100, payeeLegMinor: 100, holdOpen: false });
        expect(declined).toMatchObject({ seq: 2, state: 'declined', code: 'unknown_account', entryId: null, entrySeq: null, entryKind: null, payerLegMinor: null, payeeLegMinor: null });
        expect((await s.logCheckPage(0, 1)).map((r) => r.seq)).toEqual([1]);
        expect((await s.logCheckPage(1, 10)).map((r) => r.seq)).toEqual([2]);
        expect(await s.logCheckPage(2, 10)).toEqual([]);
      }));

    it('readSnapshot: every read of the view sees the store as it was when read began', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        await s.commitBatch(topupWrite(1, 1, a, 100));
        const seen = await s.readSnapshot(async (view) => {
          const before = (await view.counters()).lastSeq;
          await (await s.commitBatch(topupWrite(2, 2, a, 200))).durable;
          return { before, after: (await view.counters()).lastSeq, rows: (await view.logCheckPage(0, 10)).length, sums: (await view.postingSumsByAccount()).get(a.wallet) };
        });
        expect(seen).toEqual({ before: 1, after: 1, rows: 1, sums: 100 });
        expect((await s.counters()).lastSeq).toBe(2);
      }));

    it('starts empty', () =>
      withStore(async (s) => {
        expect(await s.counters()).toEqual({ lastSeq: 0, lastEntryId: 0, settledThroughSeq: 0 });
        expect(await s.listAccounts()).toEqual([]);
        expect(await s.unfinishedLog()).toEqual([]);
      }));

    it('memosFrom: rows from a seq on whose memo has the prefix, in seq order, paged, with their state and refund', () =>
      withStore(async (s) => {
        const memos = ['claim a', null, 'operator:7', 'claim b', 'claimc', 'claim c'];
        const rows = memos.map((memo, i) => row(i + 1, { memo, state: 'declined', code: 'unknown_account', atMs: 2000 - i }));
        await s.commitBatch(write({ logInserts: rows, settledThroughSeq: rows.length }));
        const declined = { state: 'declined', refundedBySeq: null };
        expect(await s.memosFrom(1, 'claim ', 10)).toEqual([
          { seq: 1, memo: 'claim a', atMs: 2000, ...declined },
          { seq: 4, memo: 'claim b', atMs: 1997, ...declined },
          { seq: 6, memo: 'claim c', atMs: 1995, ...declined },
        ]);
        expect(await s.memosFrom(1, 'claim ', 2)).toEqual([
          { seq: 1, memo: 'claim a', atMs: 2000, ...declined },
          { seq: 4, memo: 'claim b', atMs: 1997, ...declined },
        ]);
        expect(await s.memosFrom(5, 'claim ', 10)).toEqual([{ seq: 6, memo: 'claim c', atMs: 1995, ...declined }]);
        expect(await s.memosFrom(7, 'claim ', 10)).toEqual([]);
        // A settled row, then refunded by a later one: the mark is on the original.
        await s.commitBatch(write({ logInserts: [row(7, { memo: 'claim d', atMs: 3000 }), row(8, { kind: 'refund', refSeq: 7 })], refundMarks: [[7, 8]], settledThroughSeq: 8 }));
        expect(await s.memosFrom(7, 'claim ', 10)).toEqual([{ seq: 7, memo: 'claim d', atMs: 3000, state: 'done', refundedBySeq: 8 }]);
      }));

    it('currencies: those the ledger opened system accounts in, not its wallets or merchants', () =>
      withStore(async (s) => {
        expect(await s.currencies()).toEqual([]);
        for (const currency of ['USD', 'EUR']) {
          for (const kind of SYSTEM_KINDS) await s.ensureAccount({ id: systemAccountId(kind, currency), kind, currency, parentNum: null, shareBps: 0, createdMs: 1 });
        }
        await s.ensureAccount({ id: 'c'.repeat(64), kind: 'wallet', currency: 'CHF', parentNum: null, shareBps: 0, createdMs: 1 });
        await s.ensureAccount({ id: '@floatX', kind: 'merchant', currency: 'GBP', parentNum: null, shareBps: 0, createdMs: 1 });
        expect(await s.currencies()).toEqual(['EUR', 'USD']);
      }));

    it('cardTopups: top-ups whose memo starts with card, in [from, to), by time then seq, limited', () =>
      withStore(async (s) => {
        const rows = [
          row(1, { memo: 'card', atMs: 1000 }),
          row(2, { memo: 'cash', atMs: 1000 }),
          row(3, { memo: 'card\noperator:7', atMs: 1500, state: 'withdrawn' }),
          row(4, { kind: 'purchase', memo: 'card', atMs: 1200 }),
          row(5, { memo: 'card', atMs: 1100, state: 'declined', code: 'unknown_account' }),
          row(6, { memo: 'card', atMs: 2000 }),
          row(7, { memo: null, atMs: 1000 }),
        ];
        await s.commitBatch(write({ logInserts: rows, settledThroughSeq: 2 }));
        expect((await s.cardTopups(1000, 2000, 10)).map((r) => [r.seq, r.state])).toEqual([
          [1, 'done'],
          [5, 'declined'],
          [3, 'withdrawn'],
        ]);
        expect((await s.cardTopups(1000, 2001, 2)).map((r) => r.seq)).toEqual([1, 5]);
        expect((await s.cardTopups(1001, 2001, 10)).map((r) => r.seq)).toEqual([5, 3, 6]);
        expect(await s.cardTopups(2001, 3000, 10)).toEqual([]);
      }));

    it('overspentFrom: rows that overdrew their payer, inserted or updated so, with the wallet id, paged by seq', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        const other = await s.ensureAccount({ id: 'b'.repeat(64), kind: 'wallet', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 1 });
        const spent = (seq: number, payerNum: number, overspent: boolean) => row(seq, { kind: 'purchase', state: 'withdrawn', payerNum, overspent });
        await s.commitBatch(write({ logInserts: [spent(1, a.wallet, true), spent(2, other.num, false), spent(3, other.num, true), row(4, { kind: 'purchase', state: 'logged' })], settledThroughSeq: 0 }));
        await s.commitBatch(write({ logUpdates: [spent(4, a.wallet, true)], settledThroughSeq: 0 }));
        const wallet = 'a'.repeat(64);
        expect(await s.overspentFrom(1, 10)).toEqual([
          { seq: 1, walletId: wallet },
          { seq: 3, walletId: 'b'.repeat(64) },
          { seq: 4, walletId: wallet },
        ]);
        expect(await s.overspentFrom(2, 1)).toEqual([{ seq: 3, walletId: 'b'.repeat(64) }]);
        expect(await s.overspentFrom(5, 10)).toEqual([]);
      }));

    it('ensureAccount is idempotent and reads back by id and number', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        const again = await s.ensureAccount({ id: 'a'.repeat(64), kind: 'wallet', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 9 });
        expect(again.num).toBe(a.wallet);
        expect(again.createdMs).toBe(1);
        const byId = await s.accountsById(['a'.repeat(64), 'missing']);
        expect(byId.size).toBe(1);
        expect(byId.get('a'.repeat(64))).toMatchObject({ kind: 'wallet', currency: 'EUR', balanceMinor: 0, flags: 0 });
        expect((await s.accountsByNum([a.float])).get(a.float)?.id).toBe('@float:EUR');
      }));

    it('ensureAccounts creates many in one call and returns existing ones unchanged', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        const specs = [1, 2, 3].map((n) => ({ id: String(n).repeat(64), kind: 'wallet' as const, currency: 'EUR', parentNum: null, shareBps: 0, createdMs: n }));
        const made = await s.ensureAccounts([...specs, { ...specs[0]!, createdMs: 99 }, { id: 'a'.repeat(64), kind: 'wallet', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 5 }]);
        expect(made.map((x) => x.id)).toEqual([...specs.map((x) => x.id), specs[0]!.id, 'a'.repeat(64)]);
        expect(made[3]?.num).toBe(made[0]?.num);
        expect(made[4]?.num).toBe(a.wallet);
        expect(new Set(made.map((x) => x.num)).size).toBe(4);
        expect((await s.listAccounts()).length).toBe(6);
      }));

    it('commits a batch durably: everything is there after reopening', async () => {
      const f = makeFactory();
      try {
        const { s, a } = await reopenedAfterTopup(f);
        expect(await s.counters()).toEqual({ lastSeq: 1, lastEntryId: 1, settledThroughSeq: 1 });
        expect((await s.accountsByNum([a.wallet])).get(a.wallet)?.balanceMinor).toBe(100);
        const log = (await s.logByRequestIds([REQ(1)])).get(REQ(1));
        expect(log).toEqual(row(1, { payerNum: a.float, payeeNum: a.wallet, entryId: 1, balanceAfterMinor: 100 }));
        expect((await s.logBySeqs([1])).get(1)?.requestId).toBe(REQ(1));
        expect([s.isLogged(REQ(1)), s.isLogged(REQ(2))]).toEqual([true, false]);
        expect(await s.postingSumsByAccount()).toEqual(new Map([[a.float, -100], [a.wallet, 100]]));
        expect(await s.badEntries(10)).toEqual([]);
        const h = await s.history(a.wallet, 10, null);
        expect(h).toEqual([{ entryId: 1, seq: 1, entryKind: 'topup', amountMinor: 100, currency: 'EUR', atMs: 5, requestId: REQ(1) }]);
        await s.close();
      } finally {
        await f.cleanup();
      }
    });

    it('commits nothing of a batch whose request id is already logged, and names every collision', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        await s.commitBatch(topupWrite(1, 1, a, 100));
        await s.commitBatch(topupWrite(2, 2, a, 200));
        const bad = topupWrite(3, 3, a, 300);
        bad.logInserts.push(row(4, { requestId: REQ(1) }), row(5, { requestId: REQ(2) }));
        const err = await s.commitBatch(bad).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateRequestError);
        expect([...(err as DuplicateRequestError).requestIds].sort()).toEqual([REQ(1), REQ(2)]);
        expect(await s.counters()).toEqual({ lastSeq: 2, lastEntryId: 2, settledThroughSeq: 2 });
        expect((await s.accountsByNum([a.wallet])).get(a.wallet)?.balanceMinor).toBe(200);
      }));

    it('still refuses a request id logged before the store was reopened, in a batch of any size', async () => {
      const f = makeFactory();
      try {
        const { s, a } = await reopenedAfterTopup(f);
        // At once after opening (a request-id filter is still filling, so ids are read), and in
        // eight rows: a writer thread takes a batch this large however quiet the store is.
        const bad = topupWrite(2, 2, a, 200);
        bad.logInserts.push(...[3, 4, 5, 6, 7, 8].map((seq) => row(seq, { state: 'logged' })), row(9, { requestId: REQ(1) }));
        const err = await s.commitBatch(bad).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DuplicateRequestError);
        expect([...(err as DuplicateRequestError).requestIds]).toEqual([REQ(1)]);
        expect(await s.counters()).toEqual({ lastSeq: 1, lastEntryId: 1, settledThroughSeq: 1 });
        // The ids of the refused batch were never written: they go through on their own.
        await s.commitBatch(topupWrite(2, 2, a, 200));
        expect((await s.logByRequestIds([REQ(2)])).get(REQ(2))?.balanceAfterMinor).toBe(200);
        await s.close();
      } finally {
        await f.cleanup();
      }
    });

    it('tracks unfinished log rows after the checkpoint, done ranges, updates and refund marks', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        await s.commitBatch(
          write({
            logInserts: [row(1, { state: 'withdrawn', kind: 'purchase' }), row(2, { state: 'logged', kind: 'purchase' }), row(3, { state: 'withdrawn', kind: 'purchase' })],
            settledThroughSeq: 0,
          }),
        );
        expect((await s.unfinishedLog()).map((r) => [r.seq, r.state])).toEqual([
          [1, 'withdrawn'],
          [2, 'logged'],
          [3, 'withdrawn'],
        ]);
        expect(await s.inTransitTotals()).toEqual([{ currency: 'EUR', amountMinor: 200 }]);
        await s.commitBatch(
          write({
            doneRange: [1, 3],
            logUpdates: [{ ...row(2, { kind: 'purchase' }), state: 'declined', code: 'insufficient_funds', payerNum: a.wallet }],
            refundMarks: [[1, 3]],
            settledThroughSeq: 3,
          }),
        );
        expect(await s.unfinishedLog()).toEqual([]);
        const rows = await s.logBySeqs([1, 2, 3]);
        expect(rows.get(1)).toMatchObject({ state: 'done', refundedBySeq: 3 });
        expect(rows.get(2)).toMatchObject({ state: 'declined', code: 'insufficient_funds', payerNum: a.wallet });
        expect(rows.get(3)?.state).toBe('done');
        expect(await s.inTransitTotals()).toEqual([]);
        expect((await s.recentSettlements(2)).map((r) => [r.seq, r.status])).toEqual([
          [3, 'approved'],
          [2, 'declined'],
        ]);
      }));

    it('stores holds, finds the due ones in release order, deletes them', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        const merchant = await s.ensureAccount({ id: 'shop', kind: 'merchant', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: 1 });
        await s.commitBatch(
          write({
            logInserts: [1, 2, 3].map((n) => row(n, { kind: 'purchase', state: 'held', payerNum: a.wallet, payeeNum: merchant.num, holdUntilMs: 1000 * (4 - n) })),
            holdInserts: [1, 2, 3].map((n) => ({ seq: n, releaseAtMs: 1000 * (4 - n) })),
          }),
        );
        expect((await s.dueHolds(2000, 10)).map((h) => h.seq)).toEqual([3, 2]);
        expect((await s.dueHolds(5000, 1)).map((h) => h.seq)).toEqual([3]);
        expect((await s.holdsBySeqs([1, 9])).get(1)).toEqual({ seq: 1, releaseAtMs: 3000 });
        expect((await s.pendingHolds(10)).map((h) => [h.seq, h.walletId, h.merchantId])).toEqual([
          [3, 'a'.repeat(64), 'shop'],
          [2, 'a'.repeat(64), 'shop'],
          [1, 'a'.repeat(64), 'shop'],
        ]);
        expect(await s.heldTotals()).toEqual([{ currency: 'EUR', amountMinor: 300 }]);
        await s.commitBatch(write({ holdDeletes: [3, 2] }));
        expect((await s.dueHolds(9999, 10)).map((h) => h.seq)).toEqual([1]);
      }));

    it('flags accounts and reports unbalanced or foreign-currency entries', () =>
      withStore(async (s) => {
        const a = await accounts(s);
        const usd = await s.ensureAccount({ id: '@fees:USD', kind: 'fees', currency: 'USD', parentNum: null, shareBps: 0, createdMs: 1 });
        await s.commitBatch(
          write({
            flags: new Map([[a.wallet, 1]]),
            entries: [
              { id: 1, seq: 0, kind: 'topup', currency: 'EUR', atMs: 1 },
              { id: 2, seq: 0, kind: 'topup', currency: 'EUR', atMs: 1 },
              { id: 3, seq: 0, kind: 'topup', currency: 'EUR', atMs: 1 },
            ],
            postings: [
              { entryId: 1, accountNum: a.float, amountMinor: -5 },
              { entryId: 1, accountNum: a.wallet, amountMinor: 5 },
              { entryId: 2, accountNum: a.float, amountMinor: -5 },
              { entryId: 2, accountNum: a.wallet, amountMinor: 4 },
              { entryId: 3, accountNum: a.float, amountMinor: -5 },
              { entryId: 3, accountNum: usd.num, amountMinor: 5 },
            ],
          }),
        );
        expect((await s.flaggedAccounts()).map((x) => x.num)).toEqual([a.wallet]);
        expect(await s.badEntries(10)).toEqual([
          { entryId: 2, sumMinor: -1, reason: 'unbalanced' },
          { entryId: 3, sumMinor: 0, reason: 'currency' },
        ]);
      }));
  });
}
