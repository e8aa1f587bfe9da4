// SQLite adapter of the LedgerStore port (better-sqlite3 12, WAL, synchronous=FULL: a commit
// returns only after the WAL is fsynced, so "committed" means durable).
import Database from 'better-sqlite3';
import { Checkpointer } from './checkpointer.ts';
import { TableKeyFilter } from './table-key-filter.ts';
import { systemAccountId } from './batch.ts';
import { commandKindCode, entryKindCode, logStateCode } from './codes.ts';
import { encodeBatch, makeCommit, type EncodedBatch } from './commit-sql.ts';
import { DuplicateRequestError, LedgerError } from './errors.ts';
import { MIGRATIONS, type Migration } from './migrations.ts';
import type {
  BatchWrite,
  CommitReceipt,
  CurrencyTotal,
  DiscrepancyEntry,
  HoldRow,
  LedgerStore,
  LogCheckRow,
  LogRow,
  MemoRow,
  NewAccount,
  StoreCounters,
} from './store.ts';
import { DURABLE_NOW } from './store.ts';
import { WalSyncer } from './wal-syncer.ts';
import { WriterThread, type CommitTimes } from './writer-thread.ts';
import type { Account, AccountKind, DeclineCode, HistoryItem, HoldInfo, SettlementSummary } from './types.ts';

type Row = Record<string, unknown>;

/** One raw row of the logCheck statement, in its column order. */
type LogCheckDbRow = [
  seq: number,
  kind: number,
  payerNum: number | null,
  payeeNum: number | null,
  amountMinor: number,
  feeMinor: number,
  currency: string,
  holdUntilMs: number | null,
  refSeq: number | null,
  state: number,
  code: string | null,
  entryId: number | null,
  balanceAfterMinor: number | null,
  overspent: number,
  refundedBySeq: number | null,
  entrySeq: number | null,
  entryKind: number | null,
  entryCurrency: string | null,
  payerLeg: number | null,
  payeeLeg: number | null,
  holdOpen: number,
];

interface AccountDbRow {
  num: number;
  id: string;
  kind: string;
  currency: string;
  balance_minor: number;
  parent_num: number | null;
  share_bps: number;
  flags: number;
  created_ms: number;
}

interface LogDbRow {
  seq: number;
  request_id: Buffer;
  hash: Buffer;
  kind: number;
  payer_num: number | null;
  payee_num: number | null;
  amount_minor: number;
  fee_minor: number;
  currency: string;
  hold_until_ms: number | null;
  ref_seq: number | null;
  memo: string | null;
  state: number;
  code: string | null;
  entry_id: number | null;
  balance_after_minor: number | null;
  at_ms: number;
  overspent: number;
  refunded_by_seq: number | null;
}

function toAccount(r: AccountDbRow): Account {
  return {
    num: r.num,
    id: r.id,
    kind: r.kind as AccountKind,
    currency: r.currency,
    balanceMinor: r.balance_minor,
    parentNum: r.parent_num,
    shareBps: r.share_bps,
    flags: r.flags,
    createdMs: r.created_ms,
  };
}

function toLogRow(r: LogDbRow): LogRow {
  return {
    seq: r.seq,
    requestId: r.request_id.toString('hex'),
    hash: r.hash.toString('hex'),
    kind: commandKindCode.decode(r.kind),
    payerNum: r.payer_num,
    payeeNum: r.payee_num,
    amountMinor: r.amount_minor,
    feeMinor: r.fee_minor,
    currency: r.currency,
    holdUntilMs: r.hold_until_ms,
    refSeq: r.ref_seq,
    memo: r.memo,
    state: logStateCode.decode(r.state),
    code: r.code as DeclineCode | null,
    entryId: r.entry_id,
    balanceAfterMinor: r.balance_after_minor,
    atMs: r.at_ms,
    overspent: r.overspent !== 0,
    refundedBySeq: r.refunded_by_seq,
  };
}

/** The page cache of each connection, in KiB (SqliteStoreOptions.cacheKiB). */
const DEFAULT_CACHE_KIB = 65_536;

export interface SqliteStoreOptions {
  /** Page cache in KiB (SQLite cache_size = -N). Default 64 MiB: keeps 100k+ accounts hot. */
  readonly cacheKiB?: number;
  readonly readonly?: boolean;
  /**
   * 'full' (default): synchronous=FULL, the WAL is fsynced inside every COMMIT.
   * 'pipelined': synchronous=NORMAL and the store fsyncs the WAL itself off the main thread;
   * commitBatch's receipt.durable resolves after that fsync, so the engine computes and commits
   * the next batch while the disk flushes this one, and still releases nothing before it is on disk.
   */
  readonly durability?: 'full' | 'pipelined';
  /** mmap_size in bytes (default 0 = off; 1 GiB with writerThread). */
  readonly mmapBytes?: number;
  /** Page size for a NEW file only. Small pages keep the WAL bytes per random update small. */
  readonly pageSize?: number;
  /** WAL pages before the writer checkpoints itself (a backstop when the background one lags). */
  readonly walAutocheckpointPages?: number;
  /** Checkpoint from a worker thread every N ms (0 = only the writer's own autocheckpoint). Default 50 (250 with writerThread). */
  readonly backgroundCheckpointMs?: number;
  /**
   * Commit batches on a second connection in a worker thread (writer-thread.ts), still with
   * synchronous=FULL: the engine decides the next batch while this one is written and fsynced.
   * Only with durability 'full' on a file. Default true for a writable file with durability
   * 'full' (false: commit on the calling thread, as before).
   */
  readonly writerThread?: boolean;
  /** Batches handed to the writer thread and not yet committed before commitBatch waits. Default 2. */
  readonly writerMaxInFlight?: number;
}

/** Applies pending migrations in one transaction each; returns the schema version. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)`);
  const current = (db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
  const latest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  if (current > latest) throw new LedgerError('schema_too_new', `database at version ${current}, this hub knows ${latest}`);
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }).immediate();
  }
  return Math.max(current, latest);
}

/** The writer thread's commit times, and the quiet batches committed on the engine's thread instead. */
export interface WriterCommitTimes extends CommitTimes {
  readonly committedHere: number;
}

/** The snapshot's memory map (readSnapshot): verify's random postings lookups read pages without a copy. */
const SNAPSHOT_MMAP_BYTES = 1 << 30;

/** Room for this many new ids (~1.2 MB) in the request-id filter's first layer; it grows by layers. */
const LOGGED_IDS_HEADROOM = 1 << 20;

/** Commits further apart than this (under ~200 a second) skip the writer thread (see commitBatch)... */
const QUIET_COMMIT_GAP_MS = 5;
/** ...when they are this small (log rows written or updated): at peak, batches are large and just as far apart. */
const QUIET_MAX_ROWS = 4;

/** Overspent rows from a seq on, with their payer's wallet id (through the partial index settlement_log_overspent). */
export const OVERSPENT_FROM_SQL =
  'SELECT l.seq, k.id AS walletId FROM settlement_log l JOIN account_ids k ON k.num = l.payer_num WHERE l.overspent = 1 AND l.seq >= ? ORDER BY l.seq LIMIT ?';

/** Card top-ups credited (or being credited) in a time window, through the partial index settlement_log_card_topups (its terms verbatim). */
export const CARD_TOPUPS_SQL = `SELECT * FROM settlement_log WHERE kind = ${commandKindCode.encode('topup')} AND substr(memo, 1, 4) = 'card'
  AND at_ms >= ? AND at_ms < ? ORDER BY at_ms, seq LIMIT ?`;

export class SqliteLedgerStore implements LedgerStore {
  /** The file, for reads and tests; log rows are written by commitBatch only (the request-id filter must see every id). */
  readonly db: Database.Database;
  readonly #s;
  readonly #commit: (batches: readonly EncodedBatch[]) => void;
  #writer: WriterThread | null = null;
  #lastCommitMs = -Infinity;
  #committedHere = 0;
  readonly #readTx: <T>(f: () => T) => T;
  /** Request ids handed to the writer thread and not yet committed (duplicates are checked against them too). */
  readonly #inFlightIds = new Set<string>();
  /**
   * Every request id in the log or handed on to be written (with a writer thread): an id it has
   * never seen skips the duplicate check's read, which costs tens of µs here because each of the
   * writer's commits empties this connection's page cache.
   */
  #loggedIds: TableKeyFilter | null = null;
  #checkpointer: Checkpointer | null = null;
  #walSyncer: WalSyncer | null = null;
  /**
   * Why commitBatch refuses every batch from now on: a batch it accepted failed before it was
   * durable (the engine has already decided later batches on top of it), or close() began.
   */
  #refusal: LedgerError | null = null;

  private constructor(db: Database.Database) {
    this.db = db;
    const p = (sql: string): Database.Statement => db.prepare(sql);
    this.#s = {
      meta: p("SELECT value FROM meta WHERE key = 'settled_through_seq'"),
      setSettled: p("UPDATE meta SET value = ? WHERE key = 'settled_through_seq'"),
      lastSeq: p('SELECT COALESCE(MAX(seq), 0) AS v FROM settlement_log'),
      lastEntry: p('SELECT COALESCE(MAX(id), 0) AS v FROM journal_entries'),
      accById: p('SELECT k.id, a.* FROM account_ids k JOIN accounts a ON a.num = k.num WHERE k.id = ?'),
      accByNum: p('SELECT k.id, a.* FROM accounts a JOIN account_ids k ON k.num = a.num WHERE a.num = ?'),
      accInsert: p('INSERT INTO accounts (kind, currency, balance_minor, parent_num, share_bps, flags, created_ms) VALUES (?, ?, 0, ?, ?, 0, ?)'),
      accIdInsert: p('INSERT INTO account_ids (id, num) VALUES (?, ?)'),
      logByReq: p('SELECT * FROM settlement_log WHERE request_id = ?'),
      logExists: p('SELECT 1 FROM settlement_log WHERE request_id = ?').pluck(),
      // Along the request-id index (hex order is byte order), not the rows.
      requestIdsAfter: p('SELECT lower(hex(request_id)) FROM settlement_log WHERE request_id > ? ORDER BY request_id LIMIT ?').pluck(),
      logBySeq: p('SELECT * FROM settlement_log WHERE seq = ?'),
      unfinished: p('SELECT * FROM settlement_log WHERE seq > ? AND state IN (?, ?) ORDER BY seq'),
      memosFrom: p('SELECT seq, memo, at_ms, state, refunded_by_seq FROM settlement_log WHERE seq >= ? AND substr(memo, 1, ?) = ? ORDER BY seq LIMIT ?'),
      overspentFrom: p(OVERSPENT_FROM_SQL),
      cardTopups: p(CARD_TOPUPS_SQL),
      holdBySeq: p('SELECT seq, release_at_ms FROM holds WHERE seq = ?'),
      dueHolds: p('SELECT seq, release_at_ms FROM holds WHERE release_at_ms <= ? ORDER BY release_at_ms, seq LIMIT ?'),
      logUpdate: p(
        `UPDATE settlement_log SET payer_num = ?, payee_num = ?, state = ?, code = ?, entry_id = ?,
          balance_after_minor = ?, at_ms = ?, overspent = ? WHERE seq = ?`,
      ),
      logState: p('UPDATE settlement_log SET state = ? WHERE seq = ?'),
      doneRange: p(
        `UPDATE settlement_log SET state = ${logStateCode.encode('done')} WHERE seq BETWEEN ? AND ? AND state = ${logStateCode.encode('withdrawn')}`,
      ),
      refundMark: p('UPDATE settlement_log SET refunded_by_seq = ? WHERE seq = ?'),
      balance: p('UPDATE accounts SET balance_minor = ? WHERE num = ?'),
      flags: p('UPDATE accounts SET flags = ? WHERE num = ?'),
      // Primary-key lookups only: the entry, the payer's posting to it (postings are keyed
      // (account, entry)), the payee's for the kinds whose entry credits the payee, the open hold
      // of a row with a window. Paged by seq.
      logCheck: p(
        `SELECT l.seq, l.kind, l.payer_num, l.payee_num, l.amount_minor, l.fee_minor, l.currency, l.hold_until_ms, l.ref_seq, l.state,
           l.code, l.entry_id, l.balance_after_minor, l.overspent, l.refunded_by_seq, e.seq AS entry_seq, e.kind AS entry_kind,
           e.currency AS entry_currency, p.amount_minor AS payer_leg, q.amount_minor AS payee_leg, h.seq IS NOT NULL AS hold_open
         FROM settlement_log l
         LEFT JOIN journal_entries e ON e.id = l.entry_id
         LEFT JOIN postings p ON p.account_num = l.payer_num AND p.entry_id = l.entry_id
         LEFT JOIN postings q ON l.kind IN (${commandKindCode.encode('topup')}, ${commandKindCode.encode('payout')}, ${commandKindCode.encode('refund')})
           AND q.account_num = l.payee_num AND q.entry_id = l.entry_id
         LEFT JOIN holds h ON l.hold_until_ms IS NOT NULL AND h.seq = l.seq
         WHERE l.seq > ? ORDER BY l.seq LIMIT ?`,
      ).raw(),
      holdInsert: p('INSERT INTO holds (seq, release_at_ms) VALUES (?, ?)'),
      holdDelete: p('DELETE FROM holds WHERE seq = ?'),
    };
    this.#commit = makeCommit(db);
    this.#readTx = db.transaction(<T>(f: () => T): T => f()) as <T>(f: () => T) => T;
  }

  /** Opens (creating if needed) a ledger file, sets durability pragmas and migrates. */
  static open(file: string, requested: SqliteStoreOptions = {}): SqliteLedgerStore {
    if (requested.writerThread === true && requested.durability === 'pipelined') throw new TypeError('writerThread works with durability full only');
    if (requested.writerThread === true && file === ':memory:') throw new TypeError('writerThread needs a file');
    // Default: a writer thread for a writable file with durability 'full' (bench/engine.ts).
    const writerThread = requested.writerThread ?? (requested.durability !== 'pipelined' && requested.readonly !== true && file !== ':memory:');
    const options: SqliteStoreOptions = { ...requested, writerThread };
    const db = new Database(file, { readonly: options.readonly ?? false });
    if (!options.readonly) {
      db.pragma(`page_size = ${options.pageSize ?? 4096}`);
      db.pragma('journal_mode = WAL');
      // A commit must survive power loss before any result is released (seed 004 claim 24).
      db.pragma(options.durability === 'pipelined' ? 'synchronous = NORMAL' : 'synchronous = FULL');
      db.pragma('foreign_keys = ON');
    }
    db.pragma(`cache_size = -${options.cacheKiB ?? DEFAULT_CACHE_KIB}`);
    // Reads through a memory map skip a copy per page (writes still go through the WAL). With a
    // writer thread every commit invalidates this connection's page cache, so the duplicate
    // check's index reads come from the map (measured: ≈ half the time of pread).
    db.pragma(`mmap_size = ${options.mmapBytes ?? (options.writerThread === true ? 1 << 30 : 0)}`);
    db.pragma('busy_timeout = 5000');
    if (!options.readonly) migrate(db);
    const store = new SqliteLedgerStore(db);
    let walPages = 0;
    if (options.durability === 'pipelined' && !options.readonly && file !== ':memory:') store.#walSyncer = new WalSyncer(`${file}-wal`);
    // With a writer thread, checkpoints every 250 ms instead of 50: a hot page (balances, the
    // request-id index) rewritten by several batches is copied into the file once, not per batch
    // (bench/engine.ts at maxBatch 2048: ≈ 10 % less CPU per settlement with 1000 ms vs 50 ms).
    const bgMs = options.backgroundCheckpointMs ?? (options.writerThread === true ? 250 : 50);
    if (!options.readonly && bgMs > 0 && file !== ':memory:') {
      store.#checkpointer = new Checkpointer(file, bgMs);
      db.pragma(`wal_autocheckpoint = ${options.walAutocheckpointPages ?? 65_536}`);
      walPages = options.walAutocheckpointPages ?? 65_536;
    } else if (!options.readonly) {
      db.pragma(`wal_autocheckpoint = ${options.walAutocheckpointPages ?? 16_384}`);
      walPages = options.walAutocheckpointPages ?? 16_384;
    }
    if (options.writerThread === true && !options.readonly) {
      const after = store.#s.requestIdsAfter;
      store.#loggedIds = new TableKeyFilter((id, limit) => after.all(Buffer.from(id, 'hex'), limit) as string[], store.#rows() + LOGGED_IDS_HEADROOM);
      store.#writer = new WriterThread(file, { cacheKiB: options.cacheKiB ?? DEFAULT_CACHE_KIB, walAutocheckpointPages: walPages, maxInFlight: options.writerMaxInFlight ?? 2 });
    }
    return store;
  }

  async counters(): Promise<StoreCounters> {
    await this.#drain();
    const s = this.#s;
    return {
      lastSeq: (s.lastSeq.get() as { v: number }).v,
      lastEntryId: (s.lastEntry.get() as { v: number }).v,
      settledThroughSeq: (s.meta.get() as { value: number }).value,
    };
  }

  async ensureAccount(spec: NewAccount): Promise<Account> {
    return (await this.ensureAccounts([spec]))[0] as Account;
  }

  async ensureAccounts(specs: readonly NewAccount[]): Promise<Account[]> {
    await this.#drain();
    const s = this.#s;
    return this.db
      .transaction(() =>
        specs.map((spec) => {
          const existing = s.accById.get(spec.id) as AccountDbRow | undefined;
          if (existing) return toAccount(existing);
          const num = s.accInsert.run(spec.kind, spec.currency, spec.parentNum, spec.shareBps, spec.createdMs).lastInsertRowid;
          s.accIdInsert.run(spec.id, num);
          return toAccount(s.accById.get(spec.id) as AccountDbRow);
        }),
      )
      .immediate();
  }

  async accountsById(ids: readonly string[]): Promise<Map<string, Account>> {
    await this.#drain();
    const out = new Map<string, Account>();
    for (const id of ids) {
      if (out.has(id)) continue;
      const r = this.#s.accById.get(id) as AccountDbRow | undefined;
      if (r) out.set(id, toAccount(r));
    }
    return out;
  }

  async accountsByNum(nums: readonly number[]): Promise<Map<number, Account>> {
    await this.#drain();
    const out = new Map<number, Account>();
    for (const num of nums) {
      if (out.has(num)) continue;
      const r = this.#s.accByNum.get(num) as AccountDbRow | undefined;
      if (r) out.set(num, toAccount(r));
    }
    return out;
  }

  async logByRequestIds(requestIds: readonly string[]): Promise<Map<string, LogRow>> {
    await this.#drain();
    const out = new Map<string, LogRow>();
    for (const id of requestIds) {
      const r = this.#s.logByReq.get(Buffer.from(id, 'hex')) as LogDbRow | undefined;
      if (r) out.set(id, toLogRow(r));
    }
    return out;
  }

  isLogged(requestId: string): boolean {
    return this.#alreadyLogged([requestId]).length > 0;
  }

  async logBySeqs(seqs: readonly number[]): Promise<Map<number, LogRow>> {
    await this.#drain();
    const out = new Map<number, LogRow>();
    for (const seq of seqs) {
      const r = this.#s.logBySeq.get(seq) as LogDbRow | undefined;
      if (r) out.set(seq, toLogRow(r));
    }
    return out;
  }

  async unfinishedLog(): Promise<LogRow[]> {
    await this.#drain();
    const from = (this.#s.meta.get() as { value: number }).value;
    const rows = this.#s.unfinished.all(from, logStateCode.encode('logged'), logStateCode.encode('withdrawn')) as LogDbRow[];
    return rows.map(toLogRow);
  }

  async memosFrom(fromSeq: number, prefix: string, limit: number): Promise<MemoRow[]> {
    await this.#drain();
    const rows = this.#s.memosFrom.all(fromSeq, prefix.length, prefix, limit) as Array<Pick<LogDbRow, 'seq' | 'memo' | 'at_ms' | 'state' | 'refunded_by_seq'>>;
    return rows.map((r) => ({ seq: r.seq, memo: r.memo as string, atMs: r.at_ms, state: logStateCode.decode(r.state), refundedBySeq: r.refunded_by_seq }));
  }

  async cardTopups(fromMs: number, toMs: number, limit: number): Promise<LogRow[]> {
    await this.#drain();
    return (this.#s.cardTopups.all(fromMs, toMs, limit) as LogDbRow[]).map(toLogRow);
  }

  async overspentFrom(fromSeq: number, limit: number): Promise<Array<{ readonly seq: number; readonly walletId: string }>> {
    await this.#drain();
    return this.#s.overspentFrom.all(fromSeq, limit) as Array<{ seq: number; walletId: string }>;
  }

  async holdsBySeqs(seqs: readonly number[]): Promise<Map<number, HoldRow>> {
    await this.#drain();
    const out = new Map<number, HoldRow>();
    for (const seq of seqs) {
      const r = this.#s.holdBySeq.get(seq) as { seq: number; release_at_ms: number } | undefined;
      if (r) out.set(seq, { seq: r.seq, releaseAtMs: r.release_at_ms });
    }
    return out;
  }

  async dueHolds(nowMs: number, limit: number): Promise<HoldRow[]> {
    await this.#drain();
    const rows = this.#s.dueHolds.all(nowMs, limit) as Array<{ seq: number; release_at_ms: number }>;
    return rows.map((r) => ({ seq: r.seq, releaseAtMs: r.release_at_ms }));
  }

  async commitBatch(write: BatchWrite): Promise<CommitReceipt> {
    this.#refuseAfterFailure();
    if (this.#writer && !this.#quietEnoughToCommitHere(this.#writer, write)) return this.#commitInWriter(this.#writer, write);
    // Before the commit: the filter may hold an id the commit then refuses, never lack one it wrote.
    if (this.#loggedIds) for (const r of write.logInserts) this.#loggedIds.add(r.requestId);
    try {
      this.#commit([encodeBatch(write)]);
      return this.#walSyncer ? { durable: this.#refuseAfterFailedSync(this.#walSyncer.sync()) } : DURABLE_NOW;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        // Rolled back: report every colliding id at once so the engine re-runs the batch once.
        const existing = write.logInserts.map((r) => r.requestId).filter((id) => this.#s.logExists.get(Buffer.from(id, 'hex')) !== undefined);
        if (existing.length > 0) throw new DuplicateRequestError(existing);
      }
      throw new LedgerError('store_failed', 'batch rolled back', { cause: err });
    }
  }

  /**
   * A failed commit fails every later batch too (each was decided on top of it): once the writer
   * thread failed a batch, or close() began, no path commits — not the writer, not the
   * small-batch shortcut (the writer is idle after a failure), not this thread after close()
   * let the writer go while the file is still open.
   */
  #refuseAfterFailure(): void {
    const failure = this.#writer?.failure;
    if (failure) this.#refusal ??= new LedgerError('store_failed', 'an earlier batch failed in the writer thread', { cause: failure });
    if (this.#refusal) throw this.#refusal;
  }

  /** A failed fsync (durability 'pipelined') fails the later batches the same way. */
  #refuseAfterFailedSync(synced: Promise<void>): Promise<void> {
    return synced.catch((err: unknown) => {
      this.#refusal ??= new LedgerError('store_failed', 'an earlier fsync of the WAL failed', { cause: err });
      throw err;
    });
  }

  /**
   * At low load a batch commits on this thread (same transaction, same fsync): the writer's two
   * thread wake-ups cost more latency than the pipelining saves when nothing else is waiting.
   * Only when the writer is idle (nothing of it in flight, so the order holds), the previous
   * commit was at least QUIET_COMMIT_GAP_MS ago and the batch is small; under load every batch
   * goes to the writer (at peak, a few large batches far apart would otherwise fsync here).
   */
  #quietEnoughToCommitHere(writer: WriterThread, write: BatchWrite): boolean {
    const now = performance.now();
    const small = write.logInserts.length + write.logUpdates.length <= QUIET_MAX_ROWS;
    const quiet = small && writer.inFlight === 0 && now - this.#lastCommitMs >= QUIET_COMMIT_GAP_MS;
    this.#lastCommitMs = now;
    if (quiet) this.#committedHere++;
    return quiet;
  }

  /**
   * Writer-thread commit: duplicates are found here, before handing over (against the file and
   * the batches still in the writer), so the writer's unique key never fires in normal operation
   * and the engine may decide the next batch on top of this one at once ("applied" = queued in
   * order). `durable` resolves when the writer's COMMIT, fsync included, has returned.
   */
  async #commitInWriter(writer: WriterThread, write: BatchWrite): Promise<CommitReceipt> {
    const ids = write.logInserts.map((r) => r.requestId);
    const existing = this.#alreadyLogged(ids);
    if (existing.length > 0) throw new DuplicateRequestError(existing);
    const batch = encodeBatch(write);
    for (const id of ids) {
      this.#inFlightIds.add(id);
      this.#loggedIds?.add(id);
    }
    let committed: Promise<void>;
    try {
      ({ committed } = await writer.commit(batch));
    } catch (err) {
      for (const id of ids) this.#inFlightIds.delete(id);
      throw new LedgerError('store_failed', 'writer thread unavailable', { cause: err });
    }
    const durable = committed.then(
      () => {
        for (const id of ids) this.#inFlightIds.delete(id);
      },
      (err: unknown) => {
        for (const id of ids) this.#inFlightIds.delete(id);
        throw new LedgerError('store_failed', 'batch rolled back in the writer thread', { cause: err });
      },
    );
    return { durable };
  }

  /** The ids among `ids` already in the log or in flight to the writer. */
  #alreadyLogged(ids: readonly string[]): string[] {
    const maybe = this.#loggedIds ? ids.filter((id) => this.#loggedIds!.mightContain(id)) : ids;
    if (maybe.length === 0) return [];
    // One read transaction for the whole batch: one snapshot, not one per lookup.
    return this.#readTx(() => maybe.filter((id) => this.#inFlightIds.has(id) || this.#s.logExists.get(Buffer.from(id, 'hex')) !== undefined));
  }

  #rows(): number {
    return (this.#s.lastSeq.get() as { v: number }).v;
  }

  /** Resolves true once the request-id filter holds the whole log (false: none, or it stopped). */
  requestIdFilterFilled(): Promise<boolean> {
    return this.#loggedIds?.filled() ?? Promise.resolve(false);
  }

  /**
   * The writer thread's commit durations, and how many quiet batches committed on this thread
   * instead (undefined without a writer thread).
   */
  writerCommitTimes(options: { reset?: boolean } = {}): WriterCommitTimes | undefined {
    if (!this.#writer) return undefined;
    const times: WriterCommitTimes = { ...this.#writer.commitTimes(), committedHere: this.#committedHere };
    if (options.reset) {
      this.#writer.resetCommitTimes();
      this.#committedHere = 0;
    }
    return times;
  }

  /** Reads (and the rare main-thread writes) see every batch handed to the writer first. */
  async #drain(): Promise<void> {
    if (this.#writer) await this.#writer.idle();
  }

  async history(accountNum: number, limit: number, beforeEntryId: number | null): Promise<HistoryItem[]> {
    await this.#drain();
    const rows = this.db
      .prepare(
        `SELECT p.entry_id, p.amount_minor, e.seq, e.kind, e.currency, e.at_ms, l.request_id
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id
         LEFT JOIN settlement_log l ON l.seq = e.seq
         WHERE p.account_num = ? AND p.entry_id < ? ORDER BY p.entry_id DESC LIMIT ?`,
      )
      .all(accountNum, beforeEntryId ?? Number.MAX_SAFE_INTEGER, limit) as Row[];
    return rows.map((r) => ({
      entryId: r['entry_id'] as number,
      seq: r['seq'] as number,
      entryKind: entryKindCode.decode(r['kind'] as number),
      amountMinor: r['amount_minor'] as number,
      currency: r['currency'] as string,
      atMs: r['at_ms'] as number,
      requestId: r['request_id'] ? (r['request_id'] as Buffer).toString('hex') : null,
    }));
  }

  async pendingHolds(limit: number): Promise<HoldInfo[]> {
    await this.#drain();
    const rows = this.db
      .prepare(
        `SELECT h.seq, h.release_at_ms, l.request_id, l.amount_minor, l.currency, w.id AS wallet_id, m.id AS merchant_id
         FROM holds h JOIN settlement_log l ON l.seq = h.seq
         JOIN account_ids w ON w.num = l.payer_num JOIN account_ids m ON m.num = l.payee_num
         ORDER BY h.release_at_ms, h.seq LIMIT ?`,
      )
      .all(limit) as Row[];
    return rows.map((r) => ({
      seq: r['seq'] as number,
      requestId: (r['request_id'] as Buffer).toString('hex'),
      walletId: r['wallet_id'] as string,
      merchantId: r['merchant_id'] as string,
      amountMinor: r['amount_minor'] as number,
      currency: r['currency'] as string,
      releaseAtMs: r['release_at_ms'] as number,
    }));
  }

  async recentSettlements(limit: number): Promise<SettlementSummary[]> {
    await this.#drain();
    const rows = this.db.prepare('SELECT * FROM settlement_log ORDER BY seq DESC LIMIT ?').all(limit) as LogDbRow[];
    return rows.map((d) => {
      const r = toLogRow(d);
      return {
        seq: r.seq,
        requestId: r.requestId,
        kind: r.kind,
        state: r.state,
        status: r.state === 'declined' ? 'declined' : r.state === 'logged' ? 'pending' : 'approved',
        code: r.code,
        amountMinor: r.amountMinor,
        currency: r.currency,
        atMs: r.atMs,
      };
    });
  }

  async flaggedAccounts(): Promise<Account[]> {
    await this.#drain();
    return (this.db.prepare('SELECT k.id, a.* FROM accounts a JOIN account_ids k ON k.num = a.num WHERE a.flags != 0 ORDER BY a.num').all() as AccountDbRow[]).map(toAccount);
  }

  async listAccounts(): Promise<Account[]> {
    await this.#drain();
    return (this.db.prepare('SELECT k.id, a.* FROM accounts a JOIN account_ids k ON k.num = a.num ORDER BY a.num').all() as AccountDbRow[]).map(toAccount);
  }

  async currencies(): Promise<string[]> {
    await this.#drain();
    // The float account of each currency, along the account_ids key: '@float:EUR' … ('@float;' is the next prefix).
    const prefix = systemAccountId('float', '');
    return this.db.prepare('SELECT substr(id, ?) FROM account_ids WHERE id > ? AND id < ? ORDER BY id').pluck().all(prefix.length + 1, prefix, `${prefix.slice(0, -1)};`) as string[];
  }

  async postingSumsByAccount(): Promise<Map<number, number>> {
    await this.#drain();
    const rows = this.db.prepare('SELECT account_num, SUM(amount_minor) AS s FROM postings GROUP BY account_num').raw().all() as Array<[number, number]>;
    return new Map(rows);
  }

  async badEntries(limit: number): Promise<Array<DiscrepancyEntry & { readonly reason: 'unbalanced' | 'currency' | 'empty' }>> {
    await this.#drain();
    const unbalanced = this.db
      .prepare(
        `SELECT e.id, COALESCE(SUM(p.amount_minor), 0) AS s, COUNT(p.entry_id) AS n,
           SUM(CASE WHEN a.currency IS NULL OR a.currency != e.currency THEN 1 ELSE 0 END) AS foreign_n
         FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id LEFT JOIN accounts a ON a.num = p.account_num
         GROUP BY e.id HAVING s != 0 OR n = 0 OR foreign_n > 0 ORDER BY e.id LIMIT ?`,
      )
      .all(limit) as Array<{ id: number; s: number; n: number; foreign_n: number }>;
    const orphan = this.db
      .prepare('SELECT p.entry_id AS id, SUM(p.amount_minor) AS s FROM postings p LEFT JOIN journal_entries e ON e.id = p.entry_id WHERE e.id IS NULL GROUP BY p.entry_id LIMIT ?')
      .all(limit) as Array<{ id: number; s: number }>;
    const out: Array<DiscrepancyEntry & { readonly reason: 'unbalanced' | 'currency' | 'empty' }> = unbalanced.map((r) => ({
      entryId: r.id,
      sumMinor: r.s,
      reason: r.n === 0 ? 'empty' : r.s !== 0 ? 'unbalanced' : 'currency',
    }));
    for (const r of orphan) out.push({ entryId: r.id, sumMinor: r.s, reason: 'unbalanced' });
    return out.sort((a, b) => a.entryId - b.entryId).slice(0, limit);
  }

  async inTransitTotals(): Promise<CurrencyTotal[]> {
    await this.#drain();
    return this.db
      .prepare('SELECT currency, SUM(amount_minor) AS amountMinor FROM settlement_log WHERE state = ? GROUP BY currency ORDER BY currency')
      .all(logStateCode.encode('withdrawn')) as CurrencyTotal[];
  }

  async heldTotals(): Promise<CurrencyTotal[]> {
    await this.#drain();
    return this.db
      .prepare('SELECT l.currency, SUM(l.amount_minor) AS amountMinor FROM holds h JOIN settlement_log l ON l.seq = h.seq GROUP BY l.currency ORDER BY l.currency')
      .all() as CurrencyTotal[];
  }

  async logCheckPage(afterSeq: number, limit: number): Promise<LogCheckRow[]> {
    await this.#drain();
    // Raw rows (arrays): a million rows as named objects cost seconds more.
    const rows = this.#s.logCheck.all(afterSeq, limit) as LogCheckDbRow[];
    const out: LogCheckRow[] = [];
    for (const r of rows) {
      out.push({
        seq: r[0],
        kind: commandKindCode.decode(r[1]),
        payerNum: r[2],
        payeeNum: r[3],
        amountMinor: r[4],
        feeMinor: r[5],
        currency: r[6],
        holdUntilMs: r[7],
        refSeq: r[8],
        state: logStateCode.decode(r[9]),
        code: r[10] as DeclineCode | null,
        entryId: r[11],
        balanceAfterMinor: r[12],
        overspent: r[13] !== 0,
        refundedBySeq: r[14],
        entrySeq: r[15],
        entryKind: r[16] === null ? null : entryKindCode.decode(r[16]),
        entryCurrency: r[17],
        payerLegMinor: r[18],
        payeeLegMinor: r[19],
        holdOpen: r[20] !== 0,
      });
    }
    return out;
  }

  /**
   * A second, read-only connection in one read transaction: WAL keeps its snapshot while the
   * engine commits (checkpoints stop at it until it ends). An in-memory store has no second
   * connection: `read` runs on this one, as before.
   */
  async readSnapshot<T>(read: (view: LedgerStore) => Promise<T>): Promise<T> {
    await this.#drain();
    if (this.db.memory) return read(this);
    const view = SqliteLedgerStore.open(this.db.name, { readonly: true, writerThread: false, backgroundCheckpointMs: 0, mmapBytes: SNAPSHOT_MMAP_BYTES });
    try {
      view.db.exec('BEGIN');
      view.#s.lastSeq.get(); // the snapshot is taken at the transaction's first read
      return await read(view);
    } finally {
      if (view.db.inTransaction) view.db.exec('COMMIT');
      await view.close();
    }
  }

  async close(): Promise<void> {
    // First: without its writer, commitBatch would commit on this thread while the file is open.
    this.#refusal ??= new LedgerError('store_failed', 'the store is closed');
    this.#loggedIds?.stop();
    const writer = this.#writer;
    this.#writer = null;
    if (writer) await writer.stop();
    const ws = this.#walSyncer;
    this.#walSyncer = null;
    if (ws) await ws.close();
    const cp = this.#checkpointer;
    this.#checkpointer = null;
    if (cp) await cp.stop();
    if (this.db.open) this.db.close();
  }
}
