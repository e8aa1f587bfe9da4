// The settlement engine (seed 004 claims 24–33). Group commit: submit() enqueues; once per
// event-loop turn the engine deposits what the previous turn withdrew, then logs and withdraws
// the queued commands, all in ONE durable transaction, and only then resolves their promises.
import { BPS_DENOMINATOR } from './split.ts';
import { BatchBuilder, systemAccountId, type SystemNums } from './batch.ts';
import { assertCommand, commandHash, isCurrencyCode, isMerchantId, isWalletId } from './command.ts';
import { DuplicateRequestError, LedgerError } from './errors.ts';
import { emptyBatchWrite, logRow, type CommitReceipt, type HoldRow, type LedgerStore, type LogCheckRow, type LogRow } from './store.ts';
import {
  SYSTEM_KINDS,
  type Account,
  type Command,
  type HistoryItem,
  type HoldInfo,
  type OfflinePurchaseCommand,
  type Outcome,
  type PurchaseCommand,
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
  /** Load accounts into the cache at open (one scan, up to maxCachedAccounts). Default true. */
  readonly preloadAccounts?: boolean;
  /** Most accounts kept in the write-through cache (≈ 200 bytes each). Default 250,000. */
  readonly maxCachedAccounts?: number;
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

interface Computed {
  readonly builder: BatchBuilder;
  readonly outcomes: Outcome[];
  readonly released: number;
  readonly stopAfterLog: boolean;
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
    ...((row.kind === 'purchase' || row.kind === 'offline_purchase') && row.holdUntilMs !== null ? { holdUntilMs: row.holdUntilMs } : {}),
    ...(row.overspent ? { overspent: true as const } : {}),
  };
}

/**
 * seed 004 claim 13: the end of a command's cancellation window, as its log row keeps it. A length
 * (holdMs) runs from `loggedMs`, the time of the turn that logs the row: the ledger's own clock,
 * not a device's. The row stores the absolute time, so a recovery that settles the row later, a
 * duplicate answered from it and the release all use the time it was logged with.
 */
function holdUntilMs(cmd: PurchaseCommand | OfflinePurchaseCommand, loggedMs: number): number | null {
  if (cmd.holdMs !== undefined) return loggedMs + cmd.holdMs;
  return cmd.holdUntilMs ?? null;
}

export class Engine {
  readonly store: LedgerStore;
  readonly #clock: () => number;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #maxRelease: number;
  #hooks: EngineHooks;
  #queue: Pending[] = [];
  /** The outcome of the newest submit (settled either way): see decided(). */
  #lastSubmitted: Promise<unknown> = Promise.resolve();
  #releases: ReleaseWaiter[] = [];
  /** Withdrawn, deposit pending: deposited at the start of the next turn. */
  #pendingDeposits = new Map<number, LogRow>();
  /** Recovered rows still to be settled (logged but not withdrawn before a crash). */
  #recovered: LogRow[] = [];
  #system = new Map<string, SystemNums>();
  readonly #cache = new Map<number, Account>();
  /** Live balance of each cached account (the cached objects' balanceMinor may be stale). */
  readonly #balances = new Map<number, number>();
  readonly #numById = new Map<string, number>();
  readonly #maxCached: number;
  #nextSeq = 1;
  #nextEntryId = 1;
  #scheduled = false;
  #running = false;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  /** Withdrawn in a commit not yet on disk: their deposits wait for the reply (claim 24). */
  readonly #notYetDurable = new Map<number, LogRow>();
  /**
   * Per account, the credits of those withdrawals (BatchBuilder.pendingCreditsMinor of the batches
   * not yet durable): a turn deposits every other pending deposit before it decides anything, so a
   * balance limit checks balance + these (the deposit of a withdrawal must never leave the range).
   */
  readonly #incomingMinor = new Map<number, number>();
  #inflightDurable = 0;
  #lastError: unknown = null;
  /** Set when a batch applied in memory failed to become durable: nothing decided after it may commit. */
  #failure: LedgerError | null = null;
  readonly #retryMs = 100;
  #stats = { batches: 0, commands: 0, largestBatch: 0 };

  private constructor(store: LedgerStore, options: EngineOptions) {
    this.store = store;
    this.#clock = options.clock ?? Date.now;
    this.#maxBatch = options.maxBatch ?? 512;
    this.#maxQueue = options.maxQueue ?? 100_000;
    this.#maxRelease = options.maxReleasePerTurn ?? 1024;
    this.#maxCached = options.maxCachedAccounts ?? 250_000;
    this.#hooks = options.hooks ?? {};
    if (!(Number.isInteger(this.#maxBatch) && this.#maxBatch > 0)) throw new TypeError(`maxBatch=${this.#maxBatch}`);
  }

  /**
   * Opens the engine on a store and runs recovery (seed 004 claim 33): every logged entry is
   * finished exactly once and holds whose time has come are released, before this resolves.
   */
  static async open(store: LedgerStore, options: EngineOptions = {}): Promise<Engine> {
    const engine = new Engine(store, options);
    // One sequential scan beats a random read per first touch (accounts stay cached after).
    if (options.preloadAccounts ?? true) {
      for (const a of await store.listAccounts()) {
        if (engine.#cache.size >= engine.#maxCached) break;
        engine.#remember(a);
      }
    }
    const c = await store.counters();
    engine.#nextSeq = c.lastSeq + 1;
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

  /**
   * The lowest seq a row logged from now on can get (seqs only grow). The hub records it with each
   * wallet claim, so a restore knows where in the log the claims it may have lost start.
   */
  get nextSeq(): number {
    return this.#nextSeq;
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
    const outcome = new Promise<Outcome>((resolve, reject) => {
      this.#queue.push({ cmd, hash, resolve, reject });
      this.#schedule();
    });
    this.#lastSubmitted = outcome.catch(() => undefined);
    return outcome;
  }

  /**
   * Resolves once every command submitted so far is decided and durable (batches run in order, so
   * the last one's outcome covers all before it). Unlike flush(), it waits neither for commands
   * submitted later nor for deposits: a lookup of what the ledger decided for an id cannot be held
   * up indefinitely by steady traffic.
   */
  async decided(): Promise<void> {
    await this.#lastSubmitted;
  }

  /**
   * Resolves once every command submitted so far is decided, durable AND deposited (its payee
   * credited): what a balance shown to the operator or a payout must include. A turn deposits
   * every pending deposit, so the first turn after decided() covers them (its release step with no
   * release time releases nothing). Unlike flush(), later traffic does not hold it up.
   */
  async settled(): Promise<void> {
    await this.decided();
    if (this.#closed) return; // as flush(): nothing more will be deposited
    await new Promise<unknown>((resolve, reject) => {
      this.#releases.push({ nowMs: -Infinity, resolve, reject });
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

  /** Opens the system accounts of `currency` (float, clearing, …): from then on the ledger holds it. Idempotent. */
  async openCurrency(currency: string): Promise<void> {
    if (!isCurrencyCode(currency)) throw new TypeError(`currency=${currency}`);
    await this.#ensureSystem(currency);
  }

  async openWallet(pubkeyHex: string, currency: string): Promise<Account> {
    if (!isWalletId(pubkeyHex)) throw new TypeError(`pubkeyHex must be 64 lowercase hex chars: ${pubkeyHex}`);
    if (!isCurrencyCode(currency)) throw new TypeError(`currency=${currency}`);
    await this.#ensureSystem(currency);
    return this.#ensure({ id: pubkeyHex, kind: 'wallet', currency, parentNum: null, shareBps: 0 });
  }

  /** openWallet for many keys, in one transaction (e.g. importing a batch of issued wallets). */
  async openWallets(pubkeysHex: readonly string[], currency: string): Promise<Account[]> {
    for (const k of pubkeysHex) if (!isWalletId(k)) throw new TypeError(`pubkeyHex must be 64 lowercase hex chars: ${k}`);
    if (!isCurrencyCode(currency)) throw new TypeError(`currency=${currency}`);
    await this.#ensureSystem(currency);
    const createdMs = this.#clock();
    const accounts = await this.store.ensureAccounts(pubkeysHex.map((id) => ({ id, kind: 'wallet' as const, currency, parentNum: null, shareBps: 0, createdMs })));
    for (const a of accounts) {
      if (a.kind !== 'wallet' || a.currency !== currency) throw new LedgerError('account_conflict', `${a.id} exists as ${a.kind} ${a.currency}`);
      if (!this.#cache.has(a.num)) this.#remember(a);
    }
    return accounts;
  }

  /** A merchant; with parentId it is a sub-merchant sharing shareBps of its net deposits (seed 003 claim 7). */
  async openMerchant(id: string, options: { currency: string; parentId?: string; shareBps?: number }): Promise<Account> {
    if (!isMerchantId(id)) throw new TypeError(`merchant id=${id}`);
    if (!isCurrencyCode(options.currency)) throw new TypeError(`currency=${options.currency}`);
    const shareBps = options.shareBps ?? 0;
    if (!Number.isInteger(shareBps) || shareBps < 0 || shareBps > BPS_DENOMINATOR) throw new TypeError(`shareBps=${shareBps}`);
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
    if (!this.#cache.has(acc.num)) this.#remember(acc);
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

  #hasWork(): boolean {
    return this.#queue.length > 0 || this.#releases.length > 0 || this.#pendingDeposits.size > 0 || this.#recovered.length > 0;
  }

  #isIdle(): boolean {
    return !this.#running && !this.#hasWork() && this.#inflightDurable === 0 && this.#notYetDurable.size === 0;
  }

  /** After a turn or a durability notice: run again if there is work, else wake flush() waiters. */
  #afterWork(): void {
    if (this.#closed) {
      for (const w of this.#idleWaiters.splice(0)) w();
      return;
    }
    if (this.#hasWork()) this.#schedule();
    else if (this.#isIdle()) for (const w of this.#idleWaiters.splice(0)) w();
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
    let failed = false;
    try {
      await this.#runBatch(items, releases);
    } catch (err) {
      // Nothing of the batch was committed: its callers may retry with the same request ids.
      failed = true;
      this.#lastError = err;
      for (const p of items) p.reject(err);
      for (const r of releases) r.reject(err);
    } finally {
      this.#running = false;
    }
    if (this.#closed) return;
    if (failed && this.#hasWork()) {
      // A failing store (disk full, I/O error) must not spin: retry pending deposits later.
      this.#scheduled = true;
      setTimeout(() => {
        this.#scheduled = false;
        this.#schedule();
      }, this.#retryMs).unref();
    } else {
      this.#afterWork();
    }
  }

  /** The last error a turn failed with (operational visibility; null when none). */
  get lastError(): unknown {
    return this.#lastError;
  }

  async #runBatch(items: Pending[], releases: ReleaseWaiter[]): Promise<void> {
    const store = this.store;
    const nowMs = this.#clock();
    const recovered = this.#recovered.splice(0, this.#maxBatch);
    try {
      const releaseNowMs = releases.reduce((m, r) => Math.max(m, r.nowMs), -Infinity);
      // settled() waits on a turn with a release time of -Infinity: nothing to release for it.
      const dueHolds = releaseNowMs > -Infinity ? await store.dueHolds(releaseNowMs, this.#maxRelease) : [];

      // Load what this turn touches and the cache lacks: accounts, refund originals, holds.
      const accountIds = new Set<string>();
      const currencies = new Set<string>();
      const originalIds: string[] = [];
      for (const { cmd } of items) {
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
            originalIds.push(cmd.originalRequestId);
            continue;
        }
        currencies.add(cmd.currency);
      }
      const originals = originalIds.length > 0 ? await store.logByRequestIds(originalIds) : new Map<string, LogRow>();
      const extraSeqs = dueHolds.map((h) => h.seq);
      for (const r of recovered) if (r.refSeq !== null) extraSeqs.push(r.refSeq);
      const bySeq = extraSeqs.length > 0 ? await store.logBySeqs(extraSeqs) : new Map<number, LogRow>();
      // The journal facts of the refunds' originals (a refund checks the row against them).
      const originalsJournal = new Map<number, LogCheckRow>();
      const refundOriginals = [...originals.values()];
      for (const r of recovered) {
        const o = r.kind === 'refund' && r.refSeq !== null ? bySeq.get(r.refSeq) : undefined;
        if (o) refundOriginals.push(o);
      }
      for (const o of refundOriginals) {
        const [facts] = await store.logCheckPage(o.seq - 1, 1);
        if (facts?.seq === o.seq) originalsJournal.set(o.seq, facts);
      }
      const nums = new Set<number>();
      const rowNums = (r: LogRow, payer: boolean): void => {
        if (r.currency === '') return;
        currencies.add(r.currency);
        if (payer && r.payerNum !== null) nums.add(r.payerNum);
        if (r.payeeNum !== null) nums.add(r.payeeNum);
      };
      for (const r of originals.values()) rowNums(r, true);
      for (const r of bySeq.values()) rowNums(r, true);
      for (const r of recovered) rowNums(r, true);
      for (const r of this.#pendingDeposits.values()) rowNums(r, false);
      await this.#loadSystem(currencies);
      for (const c of currencies) {
        const sys = this.#system.get(c);
        if (sys) for (const k of SYSTEM_KINDS) nums.add(sys[k]);
      }
      const accounts = await this.#loadAccounts(accountIds, nums);

      let known = new Map<string, LogRow>();
      let receipt: CommitReceipt;
      for (;;) {
        const b = this.#compute({ nowMs, items, recovered, dueHolds, originals, bySeq, known, accounts, originalsJournal });
        try {
          this.#assertMayCommit();
          if (b.stopAfterLog) {
            const w = b.builder.write;
            await (await store.commitBatch({ ...emptyBatchWrite(), logInserts: w.logInserts })).durable;
            this.#afterCommit(b, items, releases, Promise.resolve());
            return;
          }
          receipt = await store.commitBatch(b.builder.write);
        } catch (err) {
          if (!(err instanceof DuplicateRequestError)) throw err;
          // Retried deliveries of logged requests: load their rows and decide the batch again.
          known = new Map([...known, ...(await store.logByRequestIds(err.requestIds))]);
          const more = await this.#loadAccounts(new Set(), new Set([...known.values()].flatMap((r) => [r.payerNum ?? 0, r.payeeNum ?? 0]).filter((n) => n > 0)));
          for (const [n, a] of more) accounts.set(n, a);
          continue;
        }
        this.#afterCommit(b, items, releases, receipt.durable);
        return;
      }
    } catch (err) {
      this.#recovered.unshift(...recovered);
      throw err;
    }
  }

  /**
   * A batch is decided on top of every earlier one (#afterCommit applies them before they are
   * durable): once one of those failed, or the engine stopped meanwhile, this one must not commit.
   */
  #assertMayCommit(): void {
    // Refused before any write: its callers may treat it as never logged (a card top-up is voided).
    if (this.#failure) throw new LedgerError('not_committed', 'a batch this one was decided on top of failed to commit', { cause: this.#failure });
    if (this.#closed) throw new LedgerError('engine_closed', 'stopped before this batch was committed');
  }

  #compute(args: {
    nowMs: number;
    items: Pending[];
    recovered: LogRow[];
    dueHolds: HoldRow[];
    originals: Map<string, LogRow>;
    bySeq: Map<number, LogRow>;
    known: Map<string, LogRow>;
    accounts: Map<number, Account>;
    originalsJournal: ReadonlyMap<number, LogCheckRow>;
  }): Computed {
    const { nowMs, items } = args;
    const b = new BatchBuilder({
      nowMs,
      nextSeq: this.#nextSeq,
      nextEntryId: this.#nextEntryId,
      accounts: args.accounts,
      system: this.#system,
      incomingMinor: this.#incomingMinor,
      originalsJournal: args.originalsJournal,
    });
    for (const r of args.originals.values()) b.setRow(r);
    for (const r of args.known.values()) b.setRow(r);
    for (const r of args.bySeq.values()) if (!b.rowsBySeq.has(r.seq)) b.setRow(r);

    // seed 004 claim 24: deposits of what the previous turn withdrew (its replies are out).
    for (const r of this.#pendingDeposits.values()) b.depositBatched(r);
    b.postDeposits();
    let released = 0;
    for (const h of args.dueHolds) {
      const r = b.rowsBySeq.get(h.seq);
      // A release that would overflow a payee waits (stays due) until a payout makes room.
      if (r && r.state === 'held' && b.creditsFit(r)) {
        b.release(r);
        released++;
      }
    }
    for (const r of args.recovered) {
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
        const orig = b.rowsBySeq.get(seen) as LogRow;
        if (orig.hash !== hash) {
          outcomes.push({ status: 'declined', requestId: cmd.requestId, kind: cmd.kind, code: 'duplicate_mismatch', seq: 0, atMs: nowMs });
        } else if (orig.state !== 'logged') {
          outcomes.push(outcomeFromRow(orig));
        }
        continue;
      }
      const logged = this.#toLogRow(cmd, hash, b.nextSeq++, nowMs, b);
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
    // Recovery restarts after the last seq with nothing left to deposit, and before the recovered
    // rows this turn leaves to later ones (at most maxBatch a turn): a crash now must find them again.
    let firstPending = Infinity;
    for (const seq of b.newPending.keys()) firstPending = Math.min(firstPending, seq);
    for (const seq of this.#notYetDurable.keys()) firstPending = Math.min(firstPending, seq);
    const waiting = this.#recovered[0]; // in seq order (unfinishedLog's; a failed turn puts its rows back in front)
    if (waiting) firstPending = Math.min(firstPending, waiting.seq);
    b.write.settledThroughSeq = firstPending !== Infinity ? firstPending - 1 : b.nextSeq - 1;
    return { builder: b, outcomes, released, stopAfterLog };
  }

  #afterCommit(c: Computed, items: Pending[], releases: ReleaseWaiter[], durable: Promise<void>): void {
    const b = c.builder;
    if (c.stopAfterLog) {
      void this.#stop();
      const err = new LedgerError('engine_closed', 'stopped by test hook after log commit');
      for (const p of items) p.reject(err);
      for (const r of releases) r.reject(err);
      return;
    }
    // Applied: the next batch builds on it (counters, balances) even before it is on disk.
    this.#nextSeq = b.nextSeq;
    this.#nextEntryId = b.nextEntryId;
    for (const seq of b.depositedSeqs) {
      this.#pendingDeposits.delete(seq);
      this.#notYetDurable.delete(seq);
    }
    for (const [seq, row] of b.newPending) this.#notYetDurable.set(seq, row);
    this.#addIncoming(b.pendingCreditsMinor, 1);
    // Live balances are kept apart from the (static) cached account objects: no copy per change.
    for (const [num, balanceMinor] of b.write.balances) if (this.#cache.has(num)) this.#balances.set(num, balanceMinor);
    for (const [num, flags] of b.write.flags) {
      const a = this.#cached(num);
      if (a) this.#cache.set(num, { ...a, flags });
    }
    this.#stats.batches++;
    this.#stats.commands += items.length;
    this.#stats.largestBatch = Math.max(this.#stats.largestBatch, items.length);
    this.#inflightDurable++;
    durable
      .then(
        () => {
          // Durable: only now may anyone learn the outcome (seed 004 claim 25), and only after
          // that reply may the deposits follow (claim 24). The next turn posts them first.
          this.#addIncoming(b.pendingCreditsMinor, -1);
          for (const [seq, row] of b.newPending) {
            // (A refund may have deposited it already, ahead of its turn.)
            if (this.#notYetDurable.delete(seq)) this.#pendingDeposits.set(seq, row);
          }
          items.forEach((p, i) => p.resolve(c.outcomes[i] as Outcome));
          for (const r of releases) r.resolve({ releasedCount: c.released });
        },
        (err: unknown) => {
          // The disk refused the commit or its fsync: nothing more is trustworthy in this process
          // (crash-only). Later batches were decided on top of this one: none may commit.
          const e = new LedgerError('store_failed', 'the commit failed before it was durable', { cause: err });
          this.#failure ??= e;
          this.#lastError = e;
          for (const p of items) p.reject(e);
          for (const r of releases) r.reject(e);
          void this.#stop('stopped: a commit failed');
        },
      )
      .finally(() => {
        this.#inflightDurable--;
        this.#afterWork();
      });
    if (this.#hooks.stopAfter === 'withdraw' && items.length > 0) void this.#stop();
  }

  #addIncoming(credits: ReadonlyMap<number, number>, sign: 1 | -1): void {
    for (const [num, amount] of credits) {
      const left = (this.#incomingMinor.get(num) ?? 0) + sign * amount;
      if (left === 0) this.#incomingMinor.delete(num);
      else this.#incomingMinor.set(num, left);
    }
  }

  /**
   * Accounts by id and number, from the write-through cache or the store. The cache is valid
   * because one engine is the only writer of its store; it is bounded (oldest evicted first).
   */
  async #loadAccounts(ids: Set<string>, nums: Set<number>): Promise<Map<number, Account>> {
    const out = new Map<number, Account>();
    const missingIds: string[] = [];
    for (const id of ids) {
      const num = this.#numById.get(id);
      const a = num !== undefined ? this.#cached(num) : undefined;
      if (a) out.set(a.num, a);
      else missingIds.push(id);
    }
    const missingNums: number[] = [];
    for (const num of nums) {
      const a = this.#cached(num);
      if (a) out.set(num, a);
      else missingNums.push(num);
    }
    const found: Account[] = [];
    if (missingIds.length > 0) found.push(...(await this.store.accountsById(missingIds)).values());
    if (missingNums.length > 0) found.push(...(await this.store.accountsByNum(missingNums)).values());
    for (const a of found) {
      out.set(a.num, a);
      this.#remember(a);
    }
    const parents = [...out.values()].map((a) => a.parentNum).filter((n): n is number => n !== null && !out.has(n));
    if (parents.length > 0) for (const [n, a] of await this.#loadAccounts(new Set(), new Set(parents))) out.set(n, a);
    return out;
  }

  /** The cached account with its live balance (refreshed lazily, on the next touch). */
  #cached(num: number): Account | undefined {
    const a = this.#cache.get(num);
    if (!a) return undefined;
    const live = this.#balances.get(num) as number;
    if (live === a.balanceMinor) return a;
    const fresh = { ...a, balanceMinor: live };
    this.#cache.set(num, fresh);
    return fresh;
  }

  #remember(a: Account): void {
    if (this.#cache.size >= this.#maxCached && !this.#cache.has(a.num)) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) {
        const old = this.#cache.get(oldest.value) as Account;
        this.#cache.delete(oldest.value);
        this.#balances.delete(oldest.value);
        this.#numById.delete(old.id);
      }
    }
    this.#cache.set(a.num, a);
    this.#balances.set(a.num, a.balanceMinor);
    this.#numById.set(a.id, a.num);
  }

  #toLogRow(cmd: Command, hash: string, seq: number, nowMs: number, b: BatchBuilder): LogRow {
    // Resolve through this batch's loaded accounts: the bounded cache may have evicted some.
    const num = (id: string): number | null => b.accountById(id)?.num ?? null;
    const row = (payerNum: number | null, payeeNum: number | null, amountMinor: number, currency: string, extra?: { feeMinor?: number; holdUntilMs?: number | null; refSeq?: number; memo?: string }): LogRow =>
      logRow({
        seq,
        requestId: cmd.requestId,
        hash,
        kind: cmd.kind,
        payerNum,
        payeeNum,
        amountMinor,
        feeMinor: extra?.feeMinor ?? 0,
        currency,
        holdUntilMs: extra?.holdUntilMs ?? null,
        refSeq: extra?.refSeq ?? null,
        memo: extra?.memo ?? cmd.memo ?? null,
        state: 'logged',
        code: null,
        entryId: null,
        balanceAfterMinor: null,
        atMs: nowMs,
        overspent: false,
        refundedBySeq: null,
      });
    switch (cmd.kind) {
      case 'purchase':
        if (cmd.feeMinor === undefined && cmd.holdUntilMs === undefined && cmd.holdMs === undefined) return row(num(cmd.walletId), num(cmd.merchantId), cmd.amountMinor, cmd.currency);
        return row(num(cmd.walletId), num(cmd.merchantId), cmd.amountMinor, cmd.currency, { feeMinor: cmd.feeMinor ?? 0, holdUntilMs: holdUntilMs(cmd, nowMs) });
      case 'fare':
        return row(num(cmd.walletId), num(cmd.merchantId), cmd.amountMinor, cmd.currency, { feeMinor: cmd.feeMinor ?? 0 });
      case 'offline_purchase':
        return row(num(cmd.walletId), num(cmd.merchantId), cmd.amountMinor, cmd.currency, { feeMinor: cmd.feeMinor ?? 0, holdUntilMs: holdUntilMs(cmd, nowMs) });
      case 'transfer':
        return row(num(cmd.fromWalletId), num(cmd.toWalletId), cmd.amountMinor, cmd.currency);
      case 'topup':
        // The source is part of the record: memo = "cash" | "card" [+ "\n" + memo].
        return row(this.#system.get(cmd.currency)?.float ?? null, num(cmd.walletId), cmd.amountMinor, cmd.currency, {
          memo: cmd.memo !== undefined ? `${cmd.source}\n${cmd.memo}` : cmd.source,
        });
      case 'payout':
        return row(num(cmd.merchantId), this.#system.get(cmd.currency)?.clearing ?? null, cmd.amountMinor, cmd.currency);
      case 'refund': {
        const origSeq = b.seqByRequestId.get(cmd.originalRequestId);
        const orig = origSeq !== undefined ? b.rowsBySeq.get(origSeq) : undefined;
        if (!orig) return row(null, null, 0, '');
        return row(orig.payeeNum, orig.payerNum, orig.amountMinor, orig.currency, { refSeq: orig.seq });
      }
    }
  }

  /** Behave like a crash (no deposit, no flush), but close the file cleanly: test hooks, a failed commit. */
  async #stop(why = 'stopped by test hook'): Promise<void> {
    this.#closed = true;
    const err = new LedgerError('engine_closed', why);
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
