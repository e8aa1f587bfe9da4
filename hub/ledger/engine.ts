// The settlement engine (seed 004 claims 24–33). Group commit: submit() enqueues; once per
// event-loop turn the engine deposits what the previous turn withdrew, then logs and withdraws
// the queued commands, all in ONE durable transaction, and only then resolves their promises.
import { BatchBuilder, systemAccountId, type SystemNums } from './batch.ts';
import { assertCommand, commandHash, isCurrencyCode, isMerchantId, isWalletId } from './command.ts';
import { LedgerError } from './errors.ts';
import type { LedgerStore, LogRow } from './store.ts';
import {
  SYSTEM_KINDS,
  type Account,
  type Command,
  type HistoryItem,
  type HoldInfo,
  type Outcome,
  type SettlementSummary,
  type SystemKind,
} from './types.ts';

export interface EngineHooks {
  /**
   * Test hook simulating a crash: 'log' commits the next batch's log rows only (state logged) and
   * stops; 'withdraw' commits the next batch's withdrawals, resolves them, and stops before any
   * deposit. A stopped engine closes its store and rejects everything else with engine_closed.
   */
  readonly stopAfter?: 'log' | 'withdraw';
}

export interface EngineOptions {
  /** Wall clock in ms; injected so tests control time (cancellation windows). */
  readonly clock?: () => number;
  /** Most commands committed in one transaction. */
  readonly maxBatch?: number;
  /** Most commands waiting; beyond it submit() rejects with queue_full. */
  readonly maxQueue?: number;
  /** Most holds released per turn. */
  readonly maxReleasePerTurn?: number;
  readonly hooks?: EngineHooks;
}

export interface EngineStats {
  readonly batches: number;
  readonly commands: number;
  readonly largestBatch: number;
}

interface Pending {
  readonly cmd: Command;
  readonly hash: string;
  readonly resolve: (o: Outcome) => void;
  readonly reject: (e: unknown) => void;
}

interface ReleaseWaiter {
  readonly nowMs: number;
  readonly resolve: (r: { releasedCount: number }) => void;
  readonly reject: (e: unknown) => void;
}

/** Outcome as recorded in the log row: a duplicate delivery gets exactly these fields back. */
export function outcomeFromRow(row: LogRow): Outcome {
  if (row.state === 'declined') {
    return { status: 'declined', requestId: row.requestId, kind: row.kind, code: row.code ?? 'not_found', seq: row.seq, atMs: row.atMs };
  }
  if (row.state === 'logged' || row.entryId === null || row.balanceAfterMinor === null) {
    throw new Error(`seq ${row.seq} has no outcome yet`);
  }
  return {
    status: 'approved',
    requestId: row.requestId,
    kind: row.kind,
    seq: row.seq,
    entryId: row.entryId,
    amountMinor: row.amountMinor,
    currency: row.currency,
    balanceAfterMinor: row.balanceAfterMinor,
    atMs: row.atMs,
    ...(row.kind === 'purchase' && row.holdUntilMs !== null ? { holdUntilMs: row.holdUntilMs } : {}),
    ...(row.overspent ? { overspent: true as const } : {}),
  };
}

export class Engine {
  readonly store: LedgerStore;
  readonly #clock: () => number;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #maxRelease: number;
  #hooks: EngineHooks;
  #queue: Pending[] = [];
  #releases: ReleaseWaiter[] = [];
  /** Withdrawn, deposit pending: deposited at the start of the next turn. */
  #pendingDeposits = new Map<number, LogRow>();
  /** Recovered rows still to be settled (logged but not withdrawn before a crash). */
  #recovered: LogRow[] = [];
  #system = new Map<string, SystemNums>();
  #nextSeq = 1;
  #nextEntryId = 1;
  #lastSeq = 0;
  #scheduled = false;
  #running = false;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  #stats = { batches: 0, commands: 0, largestBatch: 0 };

  private constructor(store: LedgerStore, options: EngineOptions) {
    this.store = store;
    this.#clock = options.clock ?? Date.now;
    this.#maxBatch = options.maxBatch ?? 512;
    this.#maxQueue = options.maxQueue ?? 100_000;
    this.#maxRelease = options.maxReleasePerTurn ?? 1024;
    this.#hooks = options.hooks ?? {};
    if (!(Number.isInteger(this.#maxBatch) && this.#maxBatch > 0)) throw new TypeError(`maxBatch=${this.#maxBatch}`);
  }

  /**
   * Opens the engine on a store and runs recovery (seed 004 claim 33): every logged entry is
   * finished exactly once and holds whose time has come are released, before this resolves.
   */
  static async open(store: LedgerStore, options: EngineOptions = {}): Promise<Engine> {
    const engine = new Engine(store, options);
    const c = await store.counters();
    engine.#nextSeq = c.lastSeq + 1;
    engine.#lastSeq = c.lastSeq;
    engine.#nextEntryId = c.lastEntryId + 1;
    for (const row of await store.unfinishedLog()) {
      if (row.state === 'withdrawn') engine.#pendingDeposits.set(row.seq, row);
      else engine.#recovered.push(row);
    }
    const hooks = engine.#hooks;
    engine.#hooks = {};
    await engine.releaseDueHolds(engine.#clock());
    await engine.flush();
    engine.#hooks = hooks;
    return engine;
  }

  get stats(): EngineStats {
    return { ...this.#stats };
  }

  /** Queues a command; resolves with its outcome only after its withdrawal is durable. */
  submit(cmd: Command): Promise<Outcome> {
    assertCommand(cmd);
    if (this.#closed) return Promise.reject(new LedgerError('engine_closed', 'submit after close'));
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new LedgerError('queue_full', `${this.#queue.length} waiting`));
    const hash = commandHash(cmd);
    return new Promise<Outcome>((resolve, reject) => {
      this.#queue.push({ cmd, hash, resolve, reject });
      this.#schedule();
    });
  }

  /** Moves holds whose release time ≤ nowMs to their merchants (seed 004 claim 13). */
  releaseDueHolds(nowMs: number = this.#clock()): Promise<{ releasedCount: number }> {
    if (this.#closed) return Promise.reject(new LedgerError('engine_closed', 'releaseDueHolds after close'));
    return new Promise((resolve, reject) => {
      this.#releases.push({ nowMs, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves when the queue is empty and every withdrawal has been deposited. */
  flush(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#schedule();
    });
  }

  /** Flushes (deposits included) and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    await this.store.close();
  }

  async openWallet(pubkeyHex: string, currency: string): Promise<Account> {
    if (!isWalletId(pubkeyHex)) throw new TypeError(`pubkeyHex must be 64 lowercase hex chars: ${pubkeyHex}`);
    if (!isCurrencyCode(currency)) throw new TypeError(`currency=${currency}`);
    await this.#ensureSystem(currency);
    return this.#ensure({ id: pubkeyHex, kind: 'wallet', currency, parentNum: null, shareBps: 0 });
  }

  /** A merchant; with parentId it is a sub-merchant sharing shareBps of its net deposits (seed 003 claim 7). */
  async openMerchant(id: string, options: { currency: string; parentId?: string; shareBps?: number }): Promise<Account> {
    if (!isMerchantId(id)) throw new TypeError(`merchant id=${id}`);
    if (!isCurrencyCode(options.currency)) throw new TypeError(`currency=${options.currency}`);
    const shareBps = options.shareBps ?? 0;
    if (!Number.isInteger(shareBps) || shareBps < 0 || shareBps > 10_000) throw new TypeError(`shareBps=${shareBps}`);
    if (shareBps > 0 && options.parentId === undefined) throw new TypeError('shareBps needs parentId');
    let parentNum: number | null = null;
    if (options.parentId !== undefined) {
      const parent = await this.getAccount(options.parentId);
      if (!parent || parent.kind !== 'merchant' || parent.currency !== options.currency) {
        throw new LedgerError('account_conflict', `parent ${options.parentId} is not a ${options.currency} merchant`);
      }
      if (parent.parentNum !== null) throw new LedgerError('account_conflict', 'a sub-merchant cannot be a parent (one level)');
      parentNum = parent.num;
    }
    await this.#ensureSystem(options.currency);
    return this.#ensure({ id, kind: 'merchant', currency: options.currency, parentNum, shareBps });
  }

  async getAccount(id: string): Promise<Account | null> {
    return (await this.store.accountsById([id])).get(id) ?? null;
  }

  /** A wallet's or merchant's postings, newest first, read through its own index range (seed 004 claim 19). */
  async history(accountId: string, options: { limit?: number; beforeEntryId?: number } = {}): Promise<HistoryItem[]> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TypeError(`limit=${limit}`);
    const acc = await this.getAccount(accountId);
    if (!acc) return [];
    return this.store.history(acc.num, limit, options.beforeEntryId ?? null);
  }

  pendingHolds(limit = 1000): Promise<HoldInfo[]> {
    return this.store.pendingHolds(limit);
  }

  recentSettlements(limit = 50): Promise<SettlementSummary[]> {
    return this.store.recentSettlements(limit);
  }

  flaggedAccounts(): Promise<Account[]> {
    return this.store.flaggedAccounts();
  }

  async #ensure(spec: { id: string; kind: Account['kind']; currency: string; parentNum: number | null; shareBps: number }): Promise<Account> {
    const acc = await this.store.ensureAccount({ ...spec, createdMs: this.#clock() });
    if (acc.kind !== spec.kind || acc.currency !== spec.currency || acc.parentNum !== spec.parentNum || acc.shareBps !== spec.shareBps) {
      throw new LedgerError('account_conflict', `${spec.id} exists as ${acc.kind} ${acc.currency}`);
    }
    return acc;
  }

  async #ensureSystem(currency: string): Promise<SystemNums> {
    const known = this.#system.get(currency);
    if (known) return known;
    const nums = {} as Record<SystemKind, number>;
    for (const kind of SYSTEM_KINDS) {
      nums[kind] = (await this.#ensure({ id: systemAccountId(kind, currency), kind, currency, parentNum: null, shareBps: 0 })).num;
    }
    this.#system.set(currency, nums);
    return nums;
  }

  /** Loads system account numbers of currencies this process has not seen (no-op when known). */
  async #loadSystem(currencies: Iterable<string>): Promise<void> {
    for (const currency of currencies) {
      if (this.#system.has(currency)) continue;
      const ids = SYSTEM_KINDS.map((k) => systemAccountId(k, currency));
      const found = await this.store.accountsById(ids);
      if (found.size !== ids.length) continue; // no account ever opened in it: commands decline unknown_account
      const nums = {} as Record<SystemKind, number>;
      SYSTEM_KINDS.forEach((k, i) => (nums[k] = (found.get(ids[i] as string) as Account).num));
      this.#system.set(currency, nums);
    }
  }

  #isIdle(): boolean {
    return !this.#running && this.#queue.length === 0 && this.#releases.length === 0 && this.#pendingDeposits.size === 0 && this.#recovered.length === 0;
  }

  #schedule(): void {
    if (this.#scheduled || this.#running || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#turn();
    });
  }

  async #turn(): Promise<void> {
    if (this.#closed) return;
    this.#running = true;
    const items = this.#queue.splice(0, this.#maxBatch);
    const releases = this.#releases.splice(0);
    try {
      await this.#runBatch(items, releases);
    } catch (err) {
      for (const p of items) p.reject(err);
      for (const r of releases) r.reject(err);
    } finally {
      this.#running = false;
    }
    if (this.#closed) return;
    if (this.#isIdle()) {
      const waiters = this.#idleWaiters.splice(0);
      for (const w of waiters) w();
    } else {
      this.#schedule();
    }
  }

  async #runBatch(items: Pending[], releases: ReleaseWaiter[]): Promise<void> {
    const store = this.store;
    const nowMs = this.#clock();
    const recovered = this.#recovered.splice(0, this.#maxBatch);
    const releaseNowMs = releases.reduce((m, r) => Math.max(m, r.nowMs), -Infinity);
    const dueHolds = releases.length > 0 ? await store.dueHolds(releaseNowMs, this.#maxRelease) : [];

    // Load everything this turn touches: log rows by request id, accounts by id and number.
    const requestIds: string[] = [];
    const accountIds = new Set<string>();
    const currencies = new Set<string>();
    for (const { cmd } of items) {
      requestIds.push(cmd.requestId);
      if (cmd.kind === 'refund') requestIds.push(cmd.originalRequestId);
      else currencies.add(cmd.currency);
      switch (cmd.kind) {
        case 'purchase':
        case 'fare':
        case 'offline_purchase':
          accountIds.add(cmd.walletId).add(cmd.merchantId);
          break;
        case 'topup':
          accountIds.add(cmd.walletId);
          break;
        case 'transfer':
          accountIds.add(cmd.fromWalletId).add(cmd.toWalletId);
          break;
        case 'payout':
          accountIds.add(cmd.merchantId);
          break;
        case 'refund':
          break;
      }
    }
    const logs = requestIds.length > 0 ? await store.logByRequestIds(requestIds) : new Map<string, LogRow>();
    const extraSeqs = dueHolds.map((h) => h.seq);
    for (const r of recovered) if (r.refSeq !== null) extraSeqs.push(r.refSeq);
    const holdRows = extraSeqs.length > 0 ? await store.logBySeqs(extraSeqs) : new Map<number, LogRow>();
    const nums = new Set<number>();
    const rowNums = (r: LogRow): void => {
      currencies.add(r.currency);
      if (r.payerNum !== null) nums.add(r.payerNum);
      if (r.payeeNum !== null) nums.add(r.payeeNum);
    };
    for (const r of logs.values()) if (r.currency !== '') rowNums(r);
    for (const r of holdRows.values()) rowNums(r);
    for (const r of this.#pendingDeposits.values()) rowNums(r);
    for (const r of recovered) rowNums(r);
    await this.#loadSystem(currencies);
    for (const c of currencies) {
      const s = this.#system.get(c);
      if (s) for (const k of SYSTEM_KINDS) nums.add(s[k]);
    }
    const byId = accountIds.size > 0 ? await store.accountsById([...accountIds]) : new Map<string, Account>();
    const accounts = new Map<number, Account>();
    for (const a of byId.values()) accounts.set(a.num, a);
    const missing = [...nums].filter((n) => !accounts.has(n));
    for (const a of (await store.accountsByNum(missing)).values()) accounts.set(a.num, a);
    const parents = [...accounts.values()].map((a) => a.parentNum).filter((n): n is number => n !== null && !accounts.has(n));
    if (parents.length > 0) for (const a of (await store.accountsByNum(parents)).values()) accounts.set(a.num, a);

    const b = new BatchBuilder({ nowMs, nextSeq: this.#nextSeq, nextEntryId: this.#nextEntryId, accounts, system: this.#system });
    for (const r of logs.values()) b.setRow(r);
    for (const r of holdRows.values()) if (!b.rowsBySeq.has(r.seq)) b.setRow(r);

    // seed 004 claim 24: deposits of what the previous turn withdrew (its replies are out).
    for (const r of this.#pendingDeposits.values()) b.deposit(r);
    let released = 0;
    for (const h of dueHolds) {
      const r = b.rowsBySeq.get(h.seq) ?? holdRows.get(h.seq);
      if (r && r.state === 'held') {
        b.release(r);
        released++;
      }
    }
    for (const r of recovered) {
      const settled = b.settle(r);
      b.write.logUpdates.push(settled);
      b.setRow(settled);
    }

    // seed 004 claims 29–32: log first, then withdraw, in the same durable transaction.
    const outcomes: Outcome[] = [];
    const stopAfterLog = this.#hooks.stopAfter === 'log' && items.length > 0;
    for (const { cmd, hash } of items) {
      const seen = b.seqByRequestId.get(cmd.requestId);
      if (seen !== undefined) {
        if (stopAfterLog) continue;
        const orig = b.rowsBySeq.get(seen) as LogRow;
        outcomes.push(
          orig.hash === hash
            ? outcomeFromRow(orig)
            : { status: 'declined', requestId: cmd.requestId, kind: cmd.kind, code: 'duplicate_mismatch', seq: 0, atMs: nowMs },
        );
        continue;
      }
      const logged = this.#toLogRow(cmd, hash, b.nextSeq++, nowMs, byId, b);
      if (stopAfterLog) {
        b.write.logInserts.push(logged);
        b.setRow(logged);
        continue;
      }
      const settled = b.settle(logged);
      b.write.logInserts.push(settled);
      b.setRow(settled);
      outcomes.push(outcomeFromRow(settled));
    }

    if (stopAfterLog) {
      const only = { ...b.write, logStates: [], refundMarks: [], entries: [], postings: [], balances: new Map(), flags: new Map(), holdInserts: [], holdDeletes: [], logUpdates: [] };
      await store.commitBatch(only);
      await this.#stop();
      const err = new LedgerError('engine_closed', 'stopped by test hook after log commit');
      for (const p of items) p.reject(err);
      for (const r of releases) r.reject(err);
      return;
    }

    const lastSeq = b.nextSeq - 1;
    const firstPending = b.newPending.size > 0 ? Math.min(...b.newPending.keys()) : null;
    b.write.settledThroughSeq = firstPending !== null ? firstPending - 1 : lastSeq;
    await store.commitBatch(b.write);

    // Committed and durable: only now may anyone learn the outcome (seed 004 claim 25).
    this.#nextSeq = b.nextSeq;
    this.#nextEntryId = b.nextEntryId;
    this.#lastSeq = lastSeq;
    this.#pendingDeposits = b.newPending;
    this.#stats.batches++;
    this.#stats.commands += items.length;
    this.#stats.largestBatch = Math.max(this.#stats.largestBatch, items.length);
    items.forEach((p, i) => p.resolve(outcomes[i] as Outcome));
    for (const r of releases) r.resolve({ releasedCount: released });
    if (this.#hooks.stopAfter === 'withdraw' && items.length > 0) await this.#stop();
  }

  #toLogRow(cmd: Command, hash: string, seq: number, nowMs: number, byId: Map<string, Account>, b: BatchBuilder): LogRow {
    const num = (id: string): number | null => byId.get(id)?.num ?? null;
    const base = {
      seq,
      requestId: cmd.requestId,
      hash,
      kind: cmd.kind,
      feeMinor: 0,
      holdUntilMs: null,
      refSeq: null,
      memo: cmd.memo ?? null,
      state: 'logged' as const,
      code: null,
      entryId: null,
      balanceAfterMinor: null,
      atMs: nowMs,
      overspent: false,
      refundedBySeq: null,
    };
    switch (cmd.kind) {
      case 'purchase':
      case 'fare':
      case 'offline_purchase':
        return {
          ...base,
          payerNum: num(cmd.walletId),
          payeeNum: num(cmd.merchantId),
          amountMinor: cmd.amountMinor,
          currency: cmd.currency,
          feeMinor: cmd.feeMinor ?? 0,
          holdUntilMs: cmd.kind === 'purchase' ? (cmd.holdUntilMs ?? null) : null,
        };
      case 'transfer':
        return { ...base, payerNum: num(cmd.fromWalletId), payeeNum: num(cmd.toWalletId), amountMinor: cmd.amountMinor, currency: cmd.currency };
      case 'topup':
        return {
          ...base,
          payerNum: this.#system.get(cmd.currency)?.float ?? null,
          payeeNum: num(cmd.walletId),
          amountMinor: cmd.amountMinor,
          currency: cmd.currency,
          memo: cmd.memo !== undefined ? `${cmd.source}\n${cmd.memo}` : cmd.source,
        };
      case 'payout':
        return { ...base, payerNum: num(cmd.merchantId), payeeNum: this.#system.get(cmd.currency)?.clearing ?? null, amountMinor: cmd.amountMinor, currency: cmd.currency };
      case 'refund': {
        const origSeq = b.seqByRequestId.get(cmd.originalRequestId);
        const orig = origSeq !== undefined ? b.rowsBySeq.get(origSeq) : undefined;
        if (!orig) return { ...base, payerNum: null, payeeNum: null, amountMinor: 0, currency: '' };
        return { ...base, payerNum: orig.payeeNum, payeeNum: orig.payerNum, amountMinor: orig.amountMinor, currency: orig.currency, refSeq: orig.seq };
      }
    }
  }

  /** Test hook: behave like a crash (no deposit, no flush), but close the file cleanly. */
  async #stop(): Promise<void> {
    this.#closed = true;
    const err = new LedgerError('engine_closed', 'stopped by test hook');
    for (const p of this.#queue.splice(0)) p.reject(err);
    for (const r of this.#releases.splice(0)) r.reject(err);
    await this.store.close();
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Test hook: stop now as if the process died (pending deposits stay pending in the file). */
  async crashForTest(): Promise<void> {
    while (this.#running) await new Promise((r) => setImmediate(r));
    await this.#stop();
  }
}
