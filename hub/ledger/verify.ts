// verify-ledger: recompute every balance from the journal and check that money is conserved;
// then check the settlement log against the journal, row by row (streamed, a page at a time).
import { depositCredits } from './split.ts';
import type { LedgerStore, LogCheckRow } from './store.ts';
import { ACCOUNT_FLAG_OVERSPENT, type Account, type EntryKind } from './types.ts';

/**
 * Why a log row contradicts itself or recovery (`log_row_invalid`). Stable codes.
 */
export const LOG_ROW_REASONS = {
  approved_without_entry: 'withdrawn, held or done, but no entry id (or a decline code)',
  declined_with_entry: 'declined or logged, but an entry id (or declined without a code)',
  state_for_kind: 'a state its kind never reaches (held without a window, withdrawn top-up, …)',
  hold_row: 'held without a row in holds, or a row in holds for a row not held',
  overspent: 'its overspent mark disagrees with its kind and balance after',
  unknown_account: 'an approved row whose payer or payee is not an account',
  behind_recovery: 'logged or withdrawn at or below settled_through_seq: recovery never reads it again',
} as const;

/** What of a row's journal entry disagrees with the row (`log_entry_mismatch`). Stable codes. */
export const LOG_ENTRY_FIELDS = {
  missing: 'the entry id names no entry',
  seq: "the entry belongs to another seq",
  kind: 'the entry is of another kind than the row settles with',
  currency: "the entry's currency is not the row's",
  payer_leg: "the entry's posting to the payer is not −amount (a refund's: not checked, the replay is)",
  payee_leg: "a top-up's, payout's or refund's entry does not post +amount to the payee",
} as const;

/** How a refund and its original disagree (`refund_link`). Stable codes. */
export const REFUND_LINK_REASONS = {
  original_not_marked: 'an approved refund that its original does not name (refunded_by_seq): unmarked, or refunded twice',
  refund_missing: 'an original names a refund that is not an approved refund of it',
  original_not_settled: 'a refunded original that is not a done purchase, fare or offline purchase',
  amount: 'the refund is not for exactly the original amount',
  accounts: "the refund's payer/payee/currency are not the original's payee/payer/currency",
} as const;

export type LogRowReason = keyof typeof LOG_ROW_REASONS;
export type LogEntryField = keyof typeof LOG_ENTRY_FIELDS;
export type RefundLinkReason = keyof typeof REFUND_LINK_REASONS;

export type Discrepancy =
  | { readonly kind: 'entry_unbalanced'; readonly entryId: number; readonly sumMinor: number }
  | { readonly kind: 'entry_currency'; readonly entryId: number }
  | { readonly kind: 'entry_empty'; readonly entryId: number }
  | { readonly kind: 'balance_mismatch'; readonly accountId: string; readonly storedMinor: number; readonly journalMinor: number }
  | { readonly kind: 'negative_balance'; readonly accountId: string; readonly balanceMinor: number }
  | { readonly kind: 'in_transit_mismatch'; readonly currency: string; readonly accountMinor: number; readonly logMinor: number }
  | { readonly kind: 'holds_mismatch'; readonly currency: string; readonly accountMinor: number; readonly holdsMinor: number }
  | { readonly kind: 'not_conserved'; readonly currency: string; readonly issuedMinusRedeemedMinor: number; readonly heldMinor: number }
  // The settlement log against the journal (a tampered or corrupted row).
  | { readonly kind: 'log_row_invalid'; readonly seq: number; readonly reason: LogRowReason }
  | {
      readonly kind: 'log_entry_mismatch';
      readonly seq: number;
      readonly entryId: number | null;
      readonly field: LogEntryField;
      /** payer_leg / payee_leg: the posting the row implies, and the one in the journal (null: none). */
      readonly logMinor?: number | null;
      readonly journalMinor?: number | null;
    }
  | { readonly kind: 'refund_link'; readonly seq: number; readonly originalSeq: number | null; readonly refundSeq: number | null; readonly reason: RefundLinkReason }
  /** The balance replaying the log gives an account (each row's money where its state says it is) ≠ its postings. */
  | { readonly kind: 'log_balance_mismatch'; readonly accountId: string; readonly logMinor: number; readonly journalMinor: number }
  /** The overspent flag of an account without an overspent row paid by it, or the other way round. */
  | { readonly kind: 'flag_mismatch'; readonly accountId: string; readonly flagged: boolean; readonly overspentSeq: number | null };

export interface CurrencyReport {
  readonly currency: string;
  /** −float: what the issuer put into circulation. */
  readonly issuedMinor: number;
  /** clearing: what merchants were paid out. */
  readonly redeemedMinor: number;
  readonly walletsMinor: number;
  readonly merchantsMinor: number;
  readonly inTransitMinor: number;
  readonly holdsMinor: number;
  readonly feesMinor: number;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly accounts: number;
  readonly currencies: CurrencyReport[];
  /** The first discrepancy found (null when ok); checks run in the order of the Discrepancy union. */
  readonly firstDiscrepancy: Discrepancy | null;
  /** Up to 100 discrepancies. */
  readonly discrepancies: Discrepancy[];
}

const MAX_REPORTED = 100;
/** Log rows per read (verifyLedger streams the log: memory stays O(accounts + open refund links)). */
export const LOG_PAGE_ROWS = 4096;

function mayBeNegative(a: Account): boolean {
  // The float is negative by design; an overspent wallet (seed 002) is the one allowed exception.
  return a.kind === 'float' || (a.kind === 'wallet' && (a.flags & 1) !== 0);
}

/**
 * Checks the ledger (README "verifyLedger"), all of it read from one snapshot of the store
 * (LedgerStore.readSnapshot), so an engine committing meanwhile does not show half a batch.
 */
export function verifyLedger(store: LedgerStore): Promise<VerifyReport> {
  return store.readSnapshot(verifySnapshot);
}

async function verifySnapshot(store: LedgerStore): Promise<VerifyReport> {
  const found: Discrepancy[] = [];
  const add = (d: Discrepancy): void => {
    if (found.length < MAX_REPORTED) found.push(d);
  };

  for (const e of await store.badEntries(MAX_REPORTED)) {
    if (e.reason === 'unbalanced') add({ kind: 'entry_unbalanced', entryId: e.entryId, sumMinor: e.sumMinor });
    else if (e.reason === 'currency') add({ kind: 'entry_currency', entryId: e.entryId });
    else add({ kind: 'entry_empty', entryId: e.entryId });
  }

  const accounts = await store.listAccounts();
  const sums = await store.postingSumsByAccount();
  const totals = new Map<string, { issued: number; redeemed: number; wallets: number; merchants: number; inTransit: number; holds: number; fees: number }>();
  for (const a of accounts) {
    const journal = sums.get(a.num) ?? 0;
    if (journal !== a.balanceMinor) add({ kind: 'balance_mismatch', accountId: a.id, storedMinor: a.balanceMinor, journalMinor: journal });
    if (a.balanceMinor < 0 && !mayBeNegative(a)) add({ kind: 'negative_balance', accountId: a.id, balanceMinor: a.balanceMinor });
    let t = totals.get(a.currency);
    if (!t) totals.set(a.currency, (t = { issued: 0, redeemed: 0, wallets: 0, merchants: 0, inTransit: 0, holds: 0, fees: 0 }));
    switch (a.kind) {
      case 'float':
        t.issued -= journal;
        break;
      case 'clearing':
        t.redeemed += journal;
        break;
      case 'wallet':
        t.wallets += journal;
        break;
      case 'merchant':
        t.merchants += journal;
        break;
      case 'in_transit':
        t.inTransit += journal;
        break;
      case 'holds':
        t.holds += journal;
        break;
      case 'fees':
        t.fees += journal;
        break;
    }
  }

  // The system accounts must match the log: in-transit = Σ withdrawn-not-deposited, holds = Σ open holds.
  const inTransitLog = new Map((await store.inTransitTotals()).map((x) => [x.currency, x.amountMinor]));
  const heldLog = new Map((await store.heldTotals()).map((x) => [x.currency, x.amountMinor]));
  const currencies: CurrencyReport[] = [];
  for (const [currency, t] of [...totals].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const logMinor = inTransitLog.get(currency) ?? 0;
    if (logMinor !== t.inTransit) add({ kind: 'in_transit_mismatch', currency, accountMinor: t.inTransit, logMinor });
    const holdsMinor = heldLog.get(currency) ?? 0;
    if (holdsMinor !== t.holds) add({ kind: 'holds_mismatch', currency, accountMinor: t.holds, holdsMinor });
    // Conservation: issued − redeemed = Σ wallets + merchants + in-transit + holds + fees.
    const held = t.wallets + t.merchants + t.inTransit + t.holds + t.fees;
    if (t.issued - t.redeemed !== held) add({ kind: 'not_conserved', currency, issuedMinusRedeemedMinor: t.issued - t.redeemed, heldMinor: held });
    currencies.push({
      currency,
      issuedMinor: t.issued,
      redeemedMinor: t.redeemed,
      walletsMinor: t.wallets,
      merchantsMinor: t.merchants,
      inTransitMinor: t.inTransit,
      holdsMinor: t.holds,
      feesMinor: t.fees,
    });
  }

  // The settlement log against the journal, streamed in seq order.
  const audit = new LogAudit(accounts, (await store.counters()).settledThroughSeq, add);
  for (let after = 0; ; ) {
    const page = await store.logCheckPage(after, LOG_PAGE_ROWS);
    for (const r of page) audit.row(r);
    if (page.length < LOG_PAGE_ROWS) break;
    after = (page[page.length - 1] as LogCheckRow).seq;
    // Let a hub running this in-process settle between pages (its commits go past the snapshot).
    await new Promise((resolve) => setImmediate(resolve));
  }
  audit.finish(sums);
  return { ok: found.length === 0, accounts: accounts.length, currencies, firstDiscrepancy: found[0] ?? null, discrepancies: found };
}

function expectedEntryKind(r: LogCheckRow): EntryKind {
  switch (r.kind) {
    case 'purchase':
    case 'offline_purchase':
      return r.holdUntilMs !== null ? 'hold' : 'withdraw';
    case 'fare':
    case 'transfer':
      return 'withdraw';
    case 'topup':
    case 'payout':
    case 'refund':
      return r.kind;
  }
}

const REFUNDABLE = new Set(['purchase', 'fare', 'offline_purchase']);

/** An original waiting for the refund it names (refunded_by_seq, always a later seq). */
interface Refunded {
  readonly seq: number;
  readonly amountMinor: number;
  readonly payerNum: number | null;
  readonly payeeNum: number | null;
  readonly currency: string;
}

/**
 * The settlement log checked against the journal, one row at a time in seq order (pure):
 * * each row against itself (state, decline code, entry id, hold, overspent mark, recovery point);
 * * an approved row against its entry: it exists, has the row's seq, kind and currency, and posts
 *   −amount to the payer (+amount to the payee of a top-up, payout or refund; nothing to the payee
 *   of a withdrawal, whose payee is credited by a later deposit or release);
 * * refunds against originals: refunded_by_seq and ref_seq name each other, same amount, accounts
 *   swapped, same currency; each original refunded once (a second approved refund is unnamed);
 * * replay: every account's balance as the log alone says (each row's money where its state puts
 *   it: in-transit, holds, or the payee's deposit credits — split and fee as the engine splits
 *   them; a refunded original's back with its payer) must equal its postings. This covers the
 *   payee and fee legs of batched deposits, which belong to many rows;
 * * the overspent flag of each account against the overspent rows it paid.
 */
class LogAudit {
  readonly #byNum: ReadonlyMap<number, Account>;
  readonly #system = new Map<string, { in_transit?: number; holds?: number; fees?: number }>();
  readonly #settledThroughSeq: number;
  readonly #add: (d: Discrepancy) => void;
  readonly #expected = new Map<number, number>();
  /** By refund seq: originals whose refund is still ahead. */
  readonly #awaitingRefund = new Map<number, Refunded>();
  /** Payer of an overspent row → the first such row. */
  readonly #overspentBy = new Map<number, number>();

  constructor(accounts: readonly Account[], settledThroughSeq: number, add: (d: Discrepancy) => void) {
    const byNum = new Map<number, Account>();
    for (const a of accounts) {
      byNum.set(a.num, a);
      if (a.kind === 'in_transit' || a.kind === 'holds' || a.kind === 'fees') {
        let s = this.#system.get(a.currency);
        if (!s) this.#system.set(a.currency, (s = {}));
        s[a.kind] = a.num;
      }
    }
    this.#byNum = byNum;
    this.#settledThroughSeq = settledThroughSeq;
    this.#add = add;
  }

  #credit(num: number | undefined, amountMinor: number): boolean {
    if (num === undefined) return false;
    this.#expected.set(num, (this.#expected.get(num) ?? 0) + amountMinor);
    return true;
  }

  // (No closures per row: a million rows would allocate a million of each.)
  #invalid(r: LogCheckRow, reason: LogRowReason): void {
    this.#add({ kind: 'log_row_invalid', seq: r.seq, reason });
  }

  #mismatch(r: LogCheckRow, field: LogEntryField, logMinor?: number | null, journalMinor?: number | null): void {
    this.#add({ kind: 'log_entry_mismatch', seq: r.seq, entryId: r.entryId, field, ...(logMinor !== undefined ? { logMinor, journalMinor } : {}) });
  }

  #link(r: LogCheckRow, reason: RefundLinkReason, originalSeq: number | null, refundSeq: number | null): void {
    this.#add({ kind: 'refund_link', seq: r.seq, originalSeq, refundSeq, reason });
  }

  row(r: LogCheckRow): void {
    if ((r.state === 'logged' || r.state === 'withdrawn') && r.seq <= this.#settledThroughSeq) this.#invalid(r, 'behind_recovery');
    const approved = r.state === 'withdrawn' || r.state === 'held' || r.state === 'done';
    if (!approved) {
      if (r.entryId !== null || (r.state === 'declined') !== (r.code !== null)) this.#invalid(r, 'declined_with_entry');
      if (r.overspent) this.#invalid(r, 'overspent');
      if (r.holdOpen) this.#invalid(r, 'hold_row');
      if (this.#awaitingRefund.has(r.seq)) this.#refundMissing(r.seq);
      return;
    }
    if (r.entryId === null || r.code !== null) this.#invalid(r, 'approved_without_entry');
    const withdrawal = r.kind === 'purchase' || r.kind === 'fare' || r.kind === 'offline_purchase' || r.kind === 'transfer';
    const windowed = (r.kind === 'purchase' || r.kind === 'offline_purchase') && r.holdUntilMs !== null;
    if ((r.state === 'held' && !windowed) || (r.state === 'withdrawn' && (!withdrawal || windowed))) this.#invalid(r, 'state_for_kind');
    if (windowed && (r.state === 'held') !== r.holdOpen) this.#invalid(r, 'hold_row');
    const overspentExpected = r.kind === 'offline_purchase' && r.balanceAfterMinor !== null && r.balanceAfterMinor < 0;
    if (r.overspent !== overspentExpected) this.#invalid(r, 'overspent');
    if (r.overspent && r.payerNum !== null && !this.#overspentBy.has(r.payerNum)) this.#overspentBy.set(r.payerNum, r.seq);
    if (r.entryId !== null) this.#entry(r);
    this.#refundLinks(r);
    if (!this.#replay(r, withdrawal)) this.#invalid(r, 'unknown_account');
  }

  #entry(r: LogCheckRow): void {
    if (r.entrySeq === null) return this.#mismatch(r, 'missing');
    if (r.entrySeq !== r.seq) this.#mismatch(r, 'seq');
    if (r.entryKind !== expectedEntryKind(r)) this.#mismatch(r, 'kind');
    if (r.entryCurrency !== r.currency) this.#mismatch(r, 'currency');
    if (r.kind !== 'refund' && r.payerLegMinor !== -r.amountMinor) this.#mismatch(r, 'payer_leg', -r.amountMinor, r.payerLegMinor);
    if ((r.kind === 'topup' || r.kind === 'payout' || r.kind === 'refund') && r.payeeLegMinor !== r.amountMinor) this.#mismatch(r, 'payee_leg', r.amountMinor, r.payeeLegMinor);
  }

  #refundLinks(r: LogCheckRow): void {
    if (r.refundedBySeq !== null) {
      if (!REFUNDABLE.has(r.kind) || r.state !== 'done') this.#link(r, 'original_not_settled', r.seq, r.refundedBySeq);
      if (r.refundedBySeq <= r.seq) this.#link(r, 'refund_missing', r.seq, r.refundedBySeq);
      else this.#awaitingRefund.set(r.refundedBySeq, { seq: r.seq, amountMinor: r.amountMinor, payerNum: r.payerNum, payeeNum: r.payeeNum, currency: r.currency });
    }
    const orig = this.#awaitingRefund.get(r.seq);
    if (r.kind !== 'refund') {
      if (orig) this.#refundMissing(r.seq);
      return;
    }
    if (!orig || orig.seq !== r.refSeq) {
      this.#link(r, 'original_not_marked', r.refSeq, r.seq);
      if (orig) this.#refundMissing(r.seq);
      return;
    }
    this.#awaitingRefund.delete(r.seq);
    if (orig.amountMinor !== r.amountMinor) this.#link(r, 'amount', orig.seq, r.seq);
    if (orig.payerNum !== r.payeeNum || orig.payeeNum !== r.payerNum || orig.currency !== r.currency) this.#link(r, 'accounts', orig.seq, r.seq);
  }

  #refundMissing(refundSeq: number): void {
    const orig = this.#awaitingRefund.get(refundSeq);
    if (!orig) return;
    this.#awaitingRefund.delete(refundSeq);
    this.#add({ kind: 'refund_link', seq: orig.seq, originalSeq: orig.seq, refundSeq, reason: 'refund_missing' });
  }

  /** Where the row's money is, by its state (false: an account it names does not exist). */
  #replay(r: LogCheckRow, withdrawal: boolean): boolean {
    const a = r.amountMinor;
    const payer = r.payerNum === null ? undefined : this.#byNum.get(r.payerNum);
    const payee = r.payeeNum === null ? undefined : this.#byNum.get(r.payeeNum);
    if (r.kind === 'refund') return this.#credit(payee?.num, a); // its debit cancels the original's credit (below)
    if (!this.#credit(payer?.num, -a)) return false;
    if (r.refundedBySeq !== null) return true; // given back to the payer by the refund row
    const sys = this.#system.get(r.currency);
    if (r.state === 'withdrawn') return this.#credit(sys?.in_transit, a);
    if (r.state === 'held') return this.#credit(sys?.holds, a);
    if (!payee) return false;
    if (!withdrawal || payee.kind === 'wallet') return this.#credit(payee.num, a);
    if (sys?.fees === undefined || r.feeMinor < 0 || r.feeMinor > a) return false;
    for (const [num, amount] of depositCredits(a, r.feeMinor, payee, sys.fees)) this.#credit(num, amount);
    return true;
  }

  /** After the last row: open refund links, the replayed balances, the overspent flags. */
  finish(journalSums: ReadonlyMap<number, number>): void {
    for (const refundSeq of [...this.#awaitingRefund.keys()]) this.#refundMissing(refundSeq);
    for (const a of this.#byNum.values()) {
      const logMinor = this.#expected.get(a.num) ?? 0;
      const journalMinor = journalSums.get(a.num) ?? 0;
      if (logMinor !== journalMinor) this.#add({ kind: 'log_balance_mismatch', accountId: a.id, logMinor, journalMinor });
    }
    for (const a of this.#byNum.values()) {
      const flagged = (a.flags & ACCOUNT_FLAG_OVERSPENT) !== 0;
      const overspentSeq = this.#overspentBy.get(a.num) ?? null;
      if (flagged !== (overspentSeq !== null)) this.#add({ kind: 'flag_mismatch', accountId: a.id, flagged, overspentSeq });
    }
  }
}
