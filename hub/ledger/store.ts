// The storage port of the ledger. The engine computes each batch in memory and hands the store
// one write set to commit atomically and durably; reads are batch-granular so a networked store
// (PostgreSQL) pays one round trip per batch, not per settlement. One engine writes a store.
import type { Account, AccountKind, CommandKind, DeclineCode, EntryKind, HoldInfo, HistoryItem, LogState, SettlementSummary } from './types.ts';

/** One row of the durable settlement log (seed 004 claims 29–33: the log file database). */
export interface LogRow {
  readonly seq: number;
  readonly requestId: string;
  /** sha256 hex of the command's canonical content. */
  readonly hash: string;
  readonly kind: CommandKind;
  readonly payerNum: number | null;
  readonly payeeNum: number | null;
  readonly amountMinor: number;
  readonly feeMinor: number;
  readonly currency: string;
  readonly holdUntilMs: number | null;
  /** refund: the original's seq. */
  readonly refSeq: number | null;
  readonly memo: string | null;
  readonly state: LogState;
  readonly code: DeclineCode | null;
  readonly entryId: number | null;
  readonly balanceAfterMinor: number | null;
  readonly atMs: number;
  readonly overspent: boolean;
  readonly refundedBySeq: number | null;
}

export interface EntryRow {
  readonly id: number;
  readonly seq: number;
  readonly kind: EntryKind;
  readonly currency: string;
  readonly atMs: number;
}

export interface PostingRow {
  readonly entryId: number;
  readonly accountNum: number;
  /** Signed: negative = debit (money leaves the account), positive = credit. */
  readonly amountMinor: number;
}

export interface HoldRow {
  readonly seq: number;
  readonly releaseAtMs: number;
}

/** Everything one engine turn changes; committed in one durable transaction. */
export interface BatchWrite {
  readonly logInserts: LogRow[];
  /** Rows whose outcome was decided after they were logged (recovery of `logged` rows). */
  readonly logUpdates: LogRow[];
  readonly logStates: Array<readonly [seq: number, state: LogState]>;
  /** Log rows in [from, to] still `withdrawn` become `done` (the batched deposit marks them). */
  doneRange: readonly [from: number, to: number] | null;
  readonly refundMarks: Array<readonly [originalSeq: number, refundSeq: number]>;
  readonly entries: EntryRow[];
  readonly postings: PostingRow[];
  readonly balances: Map<number, number>;
  readonly flags: Map<number, number>;
  readonly holdInserts: HoldRow[];
  readonly holdDeletes: number[];
  /** Every log row with seq ≤ this is finished (no deposit pending): recovery starts after it. */
  settledThroughSeq: number | null;
}

export function emptyBatchWrite(): BatchWrite {
  return {
    logInserts: [],
    logUpdates: [],
    logStates: [],
    doneRange: null,
    refundMarks: [],
    entries: [],
    postings: [],
    balances: new Map(),
    flags: new Map(),
    holdInserts: [],
    holdDeletes: [],
    settledThroughSeq: null,
  };
}

export interface CommitReceipt {
  readonly durable: Promise<void>;
}

export const DURABLE_NOW: CommitReceipt = Object.freeze({ durable: Promise.resolve() });

export interface NewAccount {
  readonly id: string;
  readonly kind: AccountKind;
  readonly currency: string;
  readonly parentNum: number | null;
  readonly shareBps: number;
  readonly createdMs: number;
}

export interface StoreCounters {
  readonly lastSeq: number;
  readonly lastEntryId: number;
  readonly settledThroughSeq: number;
}

export interface DiscrepancyEntry {
  readonly entryId: number;
  readonly sumMinor: number;
}

export interface CurrencyTotal {
  readonly currency: string;
  readonly amountMinor: number;
}

/** A log row's memo, for the start-up restores (memosFrom). */
export interface MemoRow {
  readonly seq: number;
  readonly memo: string;
  readonly atMs: number;
  /** 'declined': the row moved no money. */
  readonly state: LogState;
  /** The refund that gave the row's money back, if one did. */
  readonly refundedBySeq: number | null;
}

/**
 * A settlement-log row with the journal facts verifyLedger checks it against (logCheckPage): the
 * entry its entryId names and that entry's postings to the row's payer and payee.
 */
export interface LogCheckRow
  extends Omit<LogRow, 'requestId' | 'hash' | 'memo' | 'atMs'> {
  /** The entry `entryId` names: its seq, kind and currency (all null: no such entry, or no entryId). */
  readonly entrySeq: number | null;
  readonly entryKind: EntryKind | null;
  readonly entryCurrency: string | null;
  /** That entry's posting to payerNum (null: none). */
  readonly payerLegMinor: number | null;
  /** For a topup, payout or refund (whose entry credits the payee): that entry's posting to payeeNum; otherwise null. */
  readonly payeeLegMinor: number | null;
  /** For a row with a window (holdUntilMs): whether the holds table has a row for its seq; otherwise false. */
  readonly holdOpen: boolean;
}

export interface LedgerStore {
  counters(): Promise<StoreCounters>;
  /** Inserts the account, or returns the existing one with that id (idempotent). */
  ensureAccount(spec: NewAccount): Promise<Account>;
  /** ensureAccount for many, in one transaction (bulk wallet registration). */
  ensureAccounts(specs: readonly NewAccount[]): Promise<Account[]>;
  accountsById(ids: readonly string[]): Promise<Map<string, Account>>;
  accountsByNum(nums: readonly number[]): Promise<Map<number, Account>>;
  logByRequestIds(requestIds: readonly string[]): Promise<Map<string, LogRow>>;
  /**
   * Whether `requestId` is in the log or in a batch on its way there. Synchronous and cheap: a
   * negative cache answers a new id, an index lookup the rest; no wait for the engine.
   */
  isLogged(requestId: string): boolean;
  logBySeqs(seqs: readonly number[]): Promise<Map<number, LogRow>>;
  /** Rows after settledThroughSeq still `logged` or `withdrawn`, in seq order. */
  unfinishedLog(): Promise<LogRow[]>;
  /**
   * Up to `limit` rows from `fromSeq` on whose memo starts with `prefix`, in seq order (paged by
   * seq), with whether each moved money for good (state, refundedBySeq).
   */
  memosFrom(fromSeq: number, prefix: string, limit: number): Promise<MemoRow[]>;
  /** Up to `limit` card top-ups (any state) whose row was last written in [fromMs, toMs), by time then seq. */
  cardTopups(fromMs: number, toMs: number, limit: number): Promise<LogRow[]>;
  /** Up to `limit` rows from `fromSeq` on that overdrew their payer's wallet, with its id, in seq order. */
  overspentFrom(fromSeq: number, limit: number): Promise<Array<{ readonly seq: number; readonly walletId: string }>>;
  holdsBySeqs(seqs: readonly number[]): Promise<Map<number, HoldRow>>;
  dueHolds(nowMs: number, limit: number): Promise<HoldRow[]>;
  /**
   * Commits the write set atomically. Resolves when the commit is applied (later reads and
   * commits see it); `durable` resolves once it is on disk (already resolved for a store that
   * syncs inside the commit). Nothing may be released to a caller before `durable`. If a log
   * insert's request id is already logged, commits nothing and throws DuplicateRequestError
   * naming every colliding id of the batch.
   */
  commitBatch(write: BatchWrite): Promise<CommitReceipt>;

  // Reads for people and the rules layer.
  history(accountNum: number, limit: number, beforeEntryId: number | null): Promise<HistoryItem[]>;
  pendingHolds(limit: number): Promise<HoldInfo[]>;
  recentSettlements(limit: number): Promise<SettlementSummary[]>;
  flaggedAccounts(): Promise<Account[]>;

  // Reads for verifyLedger.
  listAccounts(): Promise<Account[]>;
  /** The currencies the ledger has opened (its system accounts'), in code order. */
  currencies(): Promise<string[]>;
  postingSumsByAccount(): Promise<Map<number, number>>;
  /** Entries whose postings do not sum to zero, or post to an account of another currency. */
  badEntries(limit: number): Promise<Array<DiscrepancyEntry & { readonly reason: 'unbalanced' | 'currency' | 'empty' }>>;
  /** Σ amount of log rows in state `withdrawn` (money in transit), per currency. */
  inTransitTotals(): Promise<CurrencyTotal[]>;
  /** Σ amount of open holds, per currency. */
  heldTotals(): Promise<CurrencyTotal[]>;
  /** Up to `limit` log rows with seq > afterSeq, in seq order, with their journal facts (paged by seq). */
  logCheckPage(afterSeq: number, limit: number): Promise<LogCheckRow[]>;
  /**
   * Runs `read` on a view of the store whose every read sees one snapshot (batches committed
   * meanwhile are not seen; the view is read-only and valid only until `read` settles).
   * verifyLedger reads through it, so a running engine does not make it see half a batch.
   */
  readSnapshot<T>(read: (view: LedgerStore) => Promise<T>): Promise<T>;

  close(): Promise<void>;
}

/** Builds a LogRow with one fixed property order (one hidden class on the hot path: no spreads). */
export function logRow(r: LogRow): LogRow {
  return {
    seq: r.seq,
    requestId: r.requestId,
    hash: r.hash,
    kind: r.kind,
    payerNum: r.payerNum,
    payeeNum: r.payeeNum,
    amountMinor: r.amountMinor,
    feeMinor: r.feeMinor,
    currency: r.currency,
    holdUntilMs: r.holdUntilMs,
    refSeq: r.refSeq,
    memo: r.memo,
    state: r.state,
    code: r.code,
    entryId: r.entryId,
    balanceAfterMinor: r.balanceAfterMinor,
    atMs: r.atMs,
    overspent: r.overspent,
    refundedBySeq: r.refundedBySeq,
  };
}

export function withOutcome(
  r: LogRow,
  state: LogRow['state'],
  code: LogRow['code'],
  entryId: number | null,
  balanceAfterMinor: number | null,
  atMs: number,
  overspent: boolean,
): LogRow {
  return {
    seq: r.seq,
    requestId: r.requestId,
    hash: r.hash,
    kind: r.kind,
    payerNum: r.payerNum,
    payeeNum: r.payeeNum,
    amountMinor: r.amountMinor,
    feeMinor: r.feeMinor,
    currency: r.currency,
    holdUntilMs: r.holdUntilMs,
    refSeq: r.refSeq,
    memo: r.memo,
    state,
    code,
    entryId,
    balanceAfterMinor,
    atMs,
    overspent,
    refundedBySeq: r.refundedBySeq,
  };
}
