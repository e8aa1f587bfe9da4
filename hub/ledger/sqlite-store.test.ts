import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations.ts';
import { migrate, CARD_TOPUPS_SQL, OVERSPENT_FROM_SQL, SqliteLedgerStore } from './sqlite-store.ts';
import { describeLedgerStoreContract } from './store-contract.ts';
import { emptyBatchWrite, logRow, type BatchWrite } from './store.ts';
import { rid, tempLedger } from './test-helpers.ts';
import { verifyLedger } from './verify.ts';

describeLedgerStoreContract('SqliteLedgerStore (real file, default: writer thread)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-store-'));
  return {
    open: async () => SqliteLedgerStore.open(join(dir, 'ledger.db')),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describeLedgerStoreContract('SqliteLedgerStore (durability pipelined)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-store-'));
  return {
    open: async () => SqliteLedgerStore.open(join(dir, 'ledger.db'), { durability: 'pipelined', backgroundCheckpointMs: 0 }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describeLedgerStoreContract('SqliteLedgerStore (commits on the calling thread)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-store-'));
  return {
    open: async () => SqliteLedgerStore.open(join(dir, 'ledger.db'), { writerThread: false, backgroundCheckpointMs: 0 }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

/** A batch that only inserts holds (their seq is the table's key, so a repeat fails in SQLite). */
function holdsBatch(seqs: readonly number[]): BatchWrite {
  return { ...emptyBatchWrite(), holdInserts: seqs.map((seq) => ({ seq, releaseAtMs: 1_000 + seq })) };
}

/** Declined log rows (no money moves) at `seqs`, plus `holdSeqs` holds. */
function declinedBatch(seqs: readonly number[], holdSeqs: readonly number[] = []): BatchWrite {
  const row = (seq: number) =>
    logRow({
      seq, requestId: rid(), hash: '00'.repeat(32), kind: 'purchase', payerNum: null, payeeNum: null, amountMinor: 1, feeMinor: 0,
      currency: 'EUR', holdUntilMs: null, refSeq: null, memo: null, state: 'declined', code: 'unknown_account', entryId: null,
      balanceAfterMinor: null, atMs: 0, overspent: false, refundedBySeq: null,
    });
  return { ...holdsBatch(holdSeqs), logInserts: seqs.map(row) };
}

describe('SqliteLedgerStore specifics', () => {
  it('opens with WAL, synchronous=FULL and records applied migrations once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-store-'));
    try {
      const file = join(dir, 'ledger.db');
      await SqliteLedgerStore.open(file).close();
      const s = SqliteLedgerStore.open(file);
      expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(s.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
      const rows = s.db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
      expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('checkpoints the WAL into the database file from the background worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-store-'));
    try {
      const file = join(dir, 'ledger.db');
      const s = SqliteLedgerStore.open(file, { backgroundCheckpointMs: 10 });
      await new Promise((r) => setTimeout(r, 300)); // let the worker checkpoint the migration
      const before = statSync(file).size;
      for (let i = 0; i < 200; i++) await s.ensureAccount({ id: `m-${i}-${'x'.repeat(60)}`, kind: 'merchant', currency: 'EUR', parentNum: null, shareBps: 0, createdMs: i });
      const deadline = Date.now() + 5000;
      while (statSync(file).size <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(statSync(file).size).toBeGreaterThan(before);
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('commits a lone batch on the calling thread and busy ones in the writer thread, timing those', async () => {
    const ledger = tempLedger({ writerThread: true });
    const engine = await ledger.openEngine();
    const topup = () => engine.submit({ kind: 'topup', requestId: rid(), walletId: 'ab'.repeat(32), amountMinor: 100, currency: 'EUR', source: 'cash' });
    try {
      const store = engine.store as SqliteLedgerStore;
      await engine.openWallet('ab'.repeat(32), 'EUR');
      await engine.flush(); // the writer idle, and the last commit > 5 ms ago:
      await new Promise((r) => setTimeout(r, 10));
      await topup(); // quiet: the withdrawal commits here (what follows it may use the writer)
      await engine.flush();
      expect(store.writerCommitTimes({ reset: true })?.committedHere).toBeGreaterThanOrEqual(1);
      // Back to back (a batch per turn, < 5 ms apart): the writer thread commits them.
      const busy: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        busy.push(topup());
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(busy);
      await engine.flush();
      const times = store.writerCommitTimes({ reset: true });
      expect(times!.commits).toBeGreaterThanOrEqual(1);
      expect(times!.transactions).toBeGreaterThanOrEqual(1);
      expect(times!.transactions).toBeLessThanOrEqual(times!.commits);
      expect(times!.p50Ms).toBeGreaterThan(0);
      expect(times!.p50Ms).toBeLessThanOrEqual(times!.p99Ms);
      expect(times!.p99Ms).toBeLessThanOrEqual(times!.maxMs);
      expect(store.writerCommitTimes()?.commits).toBe(0);
      // Quiet again, but one large batch (peak load: big batches, far apart): the writer commits it.
      await new Promise((r) => setTimeout(r, 10));
      await Promise.all(Array.from({ length: 10 }, () => topup()));
      await engine.flush();
      const large = store.writerCommitTimes({ reset: true });
      expect(large!.committedHere).toBe(0);
      expect(large!.commits).toBeGreaterThanOrEqual(1);
      expect((await engine.getAccount('ab'.repeat(32)))?.balanceMinor).toBe(31 * 100);
      expect((await verifyLedger(engine.store)).ok).toBe(true);
    } finally {
      await engine.close();
      ledger.cleanup();
    }
    const inline = tempLedger({ writerThread: false });
    const store = inline.openStore();
    try {
      expect(store.writerCommitTimes()).toBeUndefined();
    } finally {
      await store.close();
      inline.cleanup();
    }
  });

  it('refuses a request id logged before a restart once its request-id filter holds the log, and lets new ids skip the read', async () => {
    const ledger = tempLedger({ writerThread: true });
    const wallet = 'ab'.repeat(32);
    const first = rid();
    let engine = await ledger.openEngine();
    let original;
    try {
      await engine.openWallet(wallet, 'EUR');
      original = await engine.submit({ kind: 'topup', requestId: first, walletId: wallet, amountMinor: 100, currency: 'EUR', source: 'cash' });
    } finally {
      await engine.close();
    }
    engine = await ledger.openEngine();
    try {
      const store = engine.store as SqliteLedgerStore;
      expect(await store.requestIdFilterFilled()).toBe(true);
      // Ten at once: a batch the writer thread takes, where the filter decides what is read.
      const topups = [first, ...Array.from({ length: 9 }, () => rid())].map((requestId) =>
        engine.submit({ kind: 'topup', requestId, walletId: wallet, amountMinor: 100, currency: 'EUR', source: 'cash' }),
      );
      const outcomes = await Promise.all(topups);
      expect(outcomes.map((o) => o.status)).toEqual(Array(10).fill('approved'));
      // The logged one is answered with its original outcome; the nine new ones settle after it.
      expect(outcomes[0]).toEqual(original);
      expect(outcomes.slice(1).every((o) => o.seq > original.seq)).toBe(true);
      await engine.flush();
      expect((await engine.getAccount(wallet))?.balanceMinor).toBe(10 * 100);
      expect((await verifyLedger(engine.store)).ok).toBe(true);
    } finally {
      await engine.close();
      ledger.cleanup();
    }
  });

  it('counts an id committed on the engine thread in the request-id filter, so a later batch through the writer still refuses it', async () => {
    const ledger = tempLedger({ writerThread: true });
    const wallet = 'cd'.repeat(32);
    const engine = await ledger.openEngine();
    const topup = (requestId: string) => engine.submit({ kind: 'topup', requestId, walletId: wallet, amountMinor: 100, currency: 'EUR', source: 'cash' });
    try {
      const store = engine.store as SqliteLedgerStore;
      await engine.openWallet(wallet, 'EUR');
      expect(await store.requestIdFilterFilled()).toBe(true);
      // A lone top-up after a quiet gap commits on this thread; on a busy machine a timer's batch
      // may land in the gap, so try again (each try is one more top-up).
      let lone: string | undefined;
      let original: Awaited<ReturnType<typeof topup>> | undefined;
      let tries = 0;
      while (lone === undefined && tries < 20) {
        await engine.flush();
        await new Promise((r) => setTimeout(r, 20));
        store.writerCommitTimes({ reset: true });
        const id = rid();
        tries++;
        const outcome = await topup(id);
        await engine.flush();
        if (store.writerCommitTimes({ reset: true })?.committedHere === 1) [lone, original] = [id, outcome];
      }
      expect(lone, `no quiet commit on the engine thread in ${tries} tries`).toBeDefined();
      const outcomes = await Promise.all([lone!, ...Array.from({ length: 9 }, () => rid())].map(topup));
      expect(store.writerCommitTimes()?.committedHere).toBe(0);
      expect(outcomes[0]).toEqual(original);
      await engine.flush();
      expect((await engine.getAccount(wallet))?.balanceMinor).toBe((tries + 9) * 100);
    } finally {
      await engine.close();
      ledger.cleanup();
    }
  });

  it('refuses every batch after one failed in the writer thread, on the small-batch shortcut as on the writer, and keeps none of them', async () => {
    const ledger = tempLedger({ writerThread: true });
    const store = ledger.openStore();
    try {
      await (await store.commitBatch(holdsBatch([1]))).durable;
      // Five log rows: the writer thread takes it, and fails it (hold 1 exists).
      const failing = await store.commitBatch(declinedBatch([1, 2, 3, 4, 5], [1]));
      await expect(failing.durable).rejects.toMatchObject({ code: 'store_failed' });
      // Writer idle, last commit > 5 ms ago, one row: the shortcut would commit this one here.
      await new Promise((r) => setTimeout(r, 10));
      await expect(store.commitBatch(declinedBatch([1]))).rejects.toMatchObject({ code: 'store_failed' });
      await expect(store.commitBatch(declinedBatch([1, 2, 3, 4, 5, 6]))).rejects.toMatchObject({ code: 'store_failed' });
      expect(store.db.prepare('SELECT COUNT(*) FROM settlement_log').pluck().get()).toBe(0);
    } finally {
      await store.close();
      ledger.cleanup();
    }
  });

  it('refuses a batch once close() has begun, while the writer thread still finishes what it was handed', async () => {
    const ledger = tempLedger({ writerThread: true });
    const store = ledger.openStore();
    try {
      const handed = await store.commitBatch(declinedBatch([1, 2, 3, 4, 5]));
      const closing = store.close();
      await expect(store.commitBatch(declinedBatch([6]))).rejects.toMatchObject({ code: 'store_failed' });
      await handed.durable;
      await closing;
      const db = new Database(ledger.file, { readonly: true });
      expect(db.prepare('SELECT seq FROM settlement_log ORDER BY seq').pluck().all()).toEqual([1, 2, 3, 4, 5]);
      db.close();
    } finally {
      await store.close();
      ledger.cleanup();
    }
  });

  it('applies a new migration on top and refuses a database newer than the code', () => {
    const db = new Database(':memory:');
    const latest = MIGRATIONS.at(-1)!.version;
    expect(migrate(db)).toBe(latest);
    expect(migrate(db, [...MIGRATIONS, { version: latest + 1, name: 'extra', sql: 'CREATE TABLE extra (x INTEGER)' }])).toBe(latest + 1);
    expect(db.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'extra'").get()).toEqual({ n: 1 });
    expect(() => migrate(db)).toThrow(/schema_too_new/);
    db.close();
  });

  it('finds card top-ups by time through their partial index, not a scan of the log', () => {
    const db = new Database(':memory:');
    migrate(db);
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${CARD_TOPUPS_SQL}`).all(0, 1, 10) as Array<{ detail: string }>;
    expect(plan.map((r) => r.detail).join('\n')).toMatch(/SEARCH settlement_log USING INDEX settlement_log_card_topups \(at_ms>\? AND at_ms<\?\)/);
    db.close();
  });

  it('finds overspent rows through their partial index, not a scan of the log', () => {
    const db = new Database(':memory:');
    migrate(db);
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${OVERSPENT_FROM_SQL}`)
      .all(1, 10) as Array<{ detail: string }>;
    expect(plan.map((r) => r.detail).join('\n')).toMatch(/SEARCH l USING (COVERING )?INDEX settlement_log_overspent \(seq>\?\)/);
    db.close();
  });

  it('reads a wallet history through the postings(account_num, entry_id) key, not a scan', () => {
    const db = new Database(':memory:');
    migrate(db);
    const plan = db
      .prepare('EXPLAIN QUERY PLAN SELECT p.entry_id FROM postings p JOIN journal_entries e ON e.id = p.entry_id WHERE p.account_num = ? AND p.entry_id < ? ORDER BY p.entry_id DESC LIMIT ?')
      .all(1, 10, 5) as Array<{ detail: string }>;
    expect(plan.map((r) => r.detail).join('\n')).toMatch(/SEARCH p USING PRIMARY KEY \(account_num=\? AND entry_id<\?\)/);
    db.close();
  });
});
