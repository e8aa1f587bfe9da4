// Pure settlement of one engine turn: takes the accounts and log rows the store loaded, the time
// and the id counters, and produces outcomes plus one write set. No I/O here.
import { depositCredits } from './split.ts';
import { emptyBatchWrite, logRow, withOutcome, type BatchWrite, type LogCheckRow, type LogRow } from './store.ts';
import { ACCOUNT_FLAG_OVERSPENT, type Account, type DeclineCode, type EntryKind, type SystemKind } from './types.ts';

export type SystemNums = Readonly<Record<SystemKind, number>>;

export function systemAccountId(kind: SystemKind, currency: string): string {
  return `@${kind}:${currency}`;
}

const MAX = Number.MAX_SAFE_INTEGER;

export class BatchBuilder {
  readonly write: BatchWrite = emptyBatchWrite();
  readonly nowMs: number;
  /** Rows logged or changed in this batch, by seq (newest state). */
  readonly rowsBySeq = new Map<number, LogRow>();
  readonly seqByRequestId = new Map<string, number>();
  /** Withdrawn in this batch, deposit pending (the next turn deposits them). */
  readonly newPending = new Map<number, LogRow>();
  /** Seqs deposited by this batch (the engine drops them from its pending sets after commit). */
  readonly depositedSeqs: number[] = [];
  /**
   * The credits of this batch's withdrawals (newPending) per account: deposited in a later turn.
   * The engine counts them as incoming (`incomingMinor` of the next batches) until they are.
   */
  readonly pendingCreditsMinor = new Map<number, number>();
  nextSeq: number;
  nextEntryId: number;
  readonly #accounts: Map<number, Account>;
  readonly #balances = new Map<number, number>();
  readonly #system: ReadonlyMap<string, SystemNums>;
  readonly #incoming: ReadonlyMap<number, number>;
  readonly #journal: ReadonlyMap<number, Pick<LogCheckRow, 'entrySeq' | 'payerLegMinor'>>;

  /**
   * `incomingMinor`: per account, the credits of withdrawals decided in earlier batches whose
   * deposits this batch does not post (their commit is not durable yet): a balance limit counts them.
   * `originalsJournal`: by seq, the journal facts (LedgerStore.logCheckPage) of every refund
   * original the engine loaded from the store: a refund trusts such a row only if they agree.
   */
  constructor(args: {
    nowMs: number;
    nextSeq: number;
    nextEntryId: number;
    accounts: Map<number, Account>;
    system: ReadonlyMap<string, SystemNums>;
    incomingMinor: ReadonlyMap<number, number>;
    originalsJournal?: ReadonlyMap<number, Pick<LogCheckRow, 'entrySeq' | 'payerLegMinor'>>;
  }) {
    this.nowMs = args.nowMs;
    this.nextSeq = args.nextSeq;
    this.nextEntryId = args.nextEntryId;
    this.#accounts = args.accounts;
    this.#system = args.system;
    this.#incoming = args.incomingMinor;
    this.#journal = args.originalsJournal ?? new Map();
  }

  #byId: Map<string, Account> | null = null;

  accountById(id: string): Account | undefined {
    if (this.#byId === null) {
      this.#byId = new Map();
      for (const a of this.#accounts.values()) this.#byId.set(a.id, a);
    }
    return this.#byId.get(id);
  }

  account(num: number | null): Account | undefined {
    return num === null ? undefined : this.#accounts.get(num);
  }

  balance(num: number): number {
    const b = this.#balances.get(num);
    if (b !== undefined) return b;
    const a = this.#accounts.get(num);
    if (!a) throw new Error(`account ${num} not loaded for this batch`);
    return a.balanceMinor;
  }

  system(currency: string): SystemNums {
    const s = this.#system.get(currency);
    if (!s) throw new Error(`system accounts for ${currency} not loaded`);
    return s;
  }

  /** Appends one journal entry; legs must sum to zero (double entry). Returns the entry id. */
  post(kind: EntryKind, seq: number, currency: string, legs: ReadonlyArray<readonly [number, number]>): number {
    let sum = 0;
    for (const [, amount] of legs) sum += amount;
    if (sum !== 0 || legs.length < 2) throw new Error(`entry ${kind} for seq ${seq} does not balance`);
    const id = this.nextEntryId++;
    this.write.entries.push({ id, seq, kind, currency, atMs: this.nowMs });
    for (const [num, amount] of legs) {
      const after = this.balance(num) + amount;
      if (!Number.isSafeInteger(after)) throw new Error(`balance of account ${num} leaves the safe integer range`);
      this.#balances.set(num, after);
      this.write.balances.set(num, after);
      this.write.postings.push({ entryId: id, accountNum: num, amountMinor: amount });
    }
    return id;
  }

  /**
   * Whether `amountMinor` more fits account `num`: its balance, plus every credit on its way to it
   * (deposits of withdrawals not yet posted), plus this, stays a safe integer. Checked when a
   * withdrawal is decided, so a later deposit can never leave the range (a failing deposit would
   * fail every later turn: each carries the pending deposits).
   */
  #fits(num: number, amountMinor: number): boolean {
    return this.balance(num) + (this.#incoming.get(num) ?? 0) + (this.pendingCreditsMinor.get(num) ?? 0) + amountMinor <= MAX;
  }

  /** Whether every credit of `row`'s deposit (or release) fits its account (#fits). */
  creditsFit(row: LogRow, credits: ReadonlyArray<readonly [number, number]> = this.#credits(row)): boolean {
    for (const [num, amount] of credits) if (!this.#fits(num, amount)) return false;
    return true;
  }

  #countPending(credits: ReadonlyArray<readonly [number, number]>, sign: 1 | -1): void {
    for (const [num, amount] of credits) {
      const left = (this.pendingCreditsMinor.get(num) ?? 0) + sign * amount;
      if (left === 0) this.pendingCreditsMinor.delete(num);
      else this.pendingCreditsMinor.set(num, left);
    }
  }

  setRow(row: LogRow): void {
    this.rowsBySeq.set(row.seq, row);
    this.seqByRequestId.set(row.requestId, row.seq);
  }

  readonly #depositSums = new Map<string, Map<number, number>>();

  /**
   * seed 004 claim 24: deposit after the withdrawal, batched: merchant credits of many settlements
   * are summed into one journal entry per currency (postDeposits), each log entry marked done.
   */
  depositBatched(row: LogRow): void {
    const payee = this.account(row.payeeNum);
    if (!payee || payee.kind === 'wallet') return this.deposit(row);
    let sums = this.#depositSums.get(row.currency);
    if (!sums) this.#depositSums.set(row.currency, (sums = new Map()));
    for (const [num, amount] of this.#credits(row)) sums.set(num, (sums.get(num) ?? 0) + amount);
    this.depositedSeqs.push(row.seq);
    this.#changeState(row, 'done', false);
    const r = this.write.doneRange;
    this.write.doneRange = r === null ? [row.seq, row.seq] : [Math.min(r[0], row.seq), Math.max(r[1], row.seq)];
  }

  /** Posts the summed deposits (entry seq 0: it belongs to many requests). */
  postDeposits(): void {
    for (const [currency, sums] of this.#depositSums) {
      let total = 0;
      const legs: Array<[number, number]> = [];
      for (const [num, amount] of sums) {
        total += amount;
        legs.push([num, amount]);
      }
      this.post('deposit', 0, currency, [[this.system(currency).in_transit, -total], ...legs]);
    }
    this.#depositSums.clear();
  }

  /** seed 004 claim 24: deposit one settlement to its payee; marks the log entry done. */
  deposit(row: LogRow): void {
    const sys = this.system(row.currency);
    const credits = this.#credits(row);
    this.post('deposit', row.seq, row.currency, [[sys.in_transit, -row.amountMinor], ...credits]);
    this.depositedSeqs.push(row.seq);
    this.#changeState(row, 'done');
  }

  /** Cancellation window over: the held money goes to the merchant (seed 004 claim 13). */
  release(row: LogRow): void {
    const sys = this.system(row.currency);
    this.post('release', row.seq, row.currency, [[sys.holds, -row.amountMinor], ...this.#credits(row)]);
    this.write.holdDeletes.push(row.seq);
    this.#changeState(row, 'done');
  }

  #credits(row: LogRow): Array<[number, number]> {
    const payee = this.account(row.payeeNum);
    if (!payee) throw new Error(`payee of seq ${row.seq} not loaded`);
    if (payee.kind === 'wallet') return [[payee.num, row.amountMinor]];
    return depositCredits(row.amountMinor, row.feeMinor, payee, this.system(row.currency).fees);
  }

  #changeState(row: LogRow, state: LogRow['state'], write = true): void {
    // Only rows someone may still look up in this batch need the new state in memory.
    if (this.rowsBySeq.has(row.seq)) this.setRow(withOutcome(row, state, row.code, row.entryId, row.balanceAfterMinor, row.atMs, row.overspent));
    if (write) this.write.logStates.push([row.seq, state]);
  }

  /**
   * Decides a logged command: withdraw (or decline). `logged` has state 'logged' and resolved
   * account numbers (null = unknown). Returns the row with its outcome.
   */
  settle(logged: LogRow): LogRow {
    const decline = (code: DeclineCode): LogRow => withOutcome(logged, 'declined', code, null, null, this.nowMs, false);
    const payer = this.account(logged.payerNum);
    const payee = this.account(logged.payeeNum);
    const amount = logged.amountMinor;
    const approve = (entryId: number, balanceAfterMinor: number, state: LogRow['state'], overspent = false): LogRow =>
      withOutcome(logged, state, null, entryId, balanceAfterMinor, this.nowMs, overspent);

    if (logged.kind === 'refund') return this.#refund(logged, decline, approve);
    if (!payer || !payee) return decline('unknown_account');
    switch (logged.kind) {
      case 'purchase':
      case 'fare':
      case 'offline_purchase':
        if (payer.kind !== 'wallet' || payee.kind !== 'merchant') return decline('unknown_account');
        break;
      case 'transfer':
        if (payer.kind !== 'wallet' || payee.kind !== 'wallet') return decline('unknown_account');
        if (payer.num === payee.num) return decline('same_account');
        break;
      case 'topup':
        if (payer.kind !== 'float' || payee.kind !== 'wallet') return decline('unknown_account');
        break;
      case 'payout':
        if (payer.kind !== 'merchant' || payee.kind !== 'clearing') return decline('unknown_account');
        break;
    }
    if (payer.currency !== logged.currency || payee.currency !== logged.currency) return decline('currency_mismatch');
    const payerBalance = this.balance(payer.num);
    if (logged.kind === 'topup') {
      if (payerBalance - amount < -MAX || !this.#fits(payee.num, amount)) return decline('balance_limit');
      const entryId = this.post('topup', logged.seq, logged.currency, [[payer.num, -amount], [payee.num, amount]]);
      return approve(entryId, this.balance(payee.num), 'done');
    }
    const overdraw = logged.kind === 'offline_purchase';
    if (payerBalance < amount && !overdraw) return decline('insufficient_funds');
    if (payerBalance - amount < -MAX) return decline('balance_limit');
    const sys = this.system(logged.currency);
    if (logged.kind === 'payout') {
      if (!this.#fits(payee.num, amount)) return decline('balance_limit');
      const entryId = this.post('payout', logged.seq, logged.currency, [[payer.num, -amount], [payee.num, amount]]);
      return approve(entryId, this.balance(payer.num), 'done');
    }
    const held = (logged.kind === 'purchase' || logged.kind === 'offline_purchase') && logged.holdUntilMs !== null;
    // The money's way: in-transit (or holds) now, the payee's credits later (a release is checked
    // again when it is due: engine #compute).
    const credits = this.#credits(logged);
    if (!this.#fits(held ? sys.holds : sys.in_transit, amount) || !this.creditsFit(logged, credits)) return decline('balance_limit');
    // seed 004 claim 24: withdraw from the payer first, into in-transit (or holds).
    const entryId = this.post(held ? 'hold' : 'withdraw', logged.seq, logged.currency, [
      [payer.num, -amount],
      [held ? sys.holds : sys.in_transit, amount],
    ]);
    const after = this.balance(payer.num);
    let overspent = false;
    if (after < 0) {
      // seed 002: an offline authorization the wallet could not cover flags the pseudonym.
      overspent = true;
      const flags = (this.write.flags.get(payer.num) ?? payer.flags) | ACCOUNT_FLAG_OVERSPENT;
      this.write.flags.set(payer.num, flags);
    }
    if (held) {
      this.write.holdInserts.push({ seq: logged.seq, releaseAtMs: logged.holdUntilMs as number });
      return approve(entryId, after, 'held', overspent);
    }
    const row = approve(entryId, after, 'withdrawn', overspent);
    this.newPending.set(row.seq, row);
    this.#countPending(credits, 1);
    return row;
  }

  #refund(logged: LogRow, decline: (code: DeclineCode) => LogRow, approve: (entryId: number, bal: number, state: LogRow['state']) => LogRow): LogRow {
    if (logged.refSeq === null) return decline('not_found');
    const orig = this.rowsBySeq.get(logged.refSeq);
    if (!orig) throw new Error(`original seq ${logged.refSeq} not loaded`);
    if (orig.state === 'declined' || orig.state === 'logged') return decline('not_found');
    if (orig.kind !== 'purchase' && orig.kind !== 'fare' && orig.kind !== 'offline_purchase') return decline('not_refundable');
    if (orig.refundedBySeq !== null) return decline('already_refunded');
    // The amount and payer given back are the original row's columns: only if its own journal
    // entry withdrew exactly that from that payer (a row read from the store; one decided in this
    // batch is this batch's own). A row that disagrees is not refunded (verifyLedger names it).
    const j = this.#journal.get(orig.seq);
    if (j && (j.entrySeq !== orig.seq || j.payerLegMinor !== -orig.amountMinor)) return decline('not_refundable');
    const wallet = this.account(orig.payerNum);
    if (!wallet) throw new Error(`wallet of seq ${orig.seq} not loaded`);
    const sys = this.system(orig.currency);
    const amount = orig.amountMinor;
    if (!this.#fits(wallet.num, amount)) return decline('balance_limit');
    let entryId: number;
    if (orig.state === 'held') {
      // Not released yet: the money comes back from the holds. Whether a buyer's cancellation is
      // still inside its window (seed 004 claim 13) is the caller's rule; a refund for goods never
      // delivered, or the operator's, stands at any time.
      entryId = this.post('refund', logged.seq, orig.currency, [[sys.holds, -amount], [wallet.num, amount]]);
      this.write.holdDeletes.push(orig.seq);
      this.#changeState(orig, 'done');
    } else {
      // Released to the merchant (after its window) or deposited: back from the payee's credits.
      if (orig.state === 'withdrawn') {
        // Still in transit (same or previous batch): deposit first so the reversal mirrors it.
        if (this.newPending.delete(orig.seq)) this.#countPending(this.#credits(orig), -1);
        this.deposit(orig);
      }
      const credits = this.#credits(orig);
      for (const [num, amt] of credits) if (this.balance(num) < amt) return decline('insufficient_funds');
      entryId = this.post('refund', logged.seq, orig.currency, [...credits.map(([num, amt]): [number, number] => [num, -amt]), [wallet.num, amount]]);
    }
    const current = this.rowsBySeq.get(orig.seq) ?? orig;
    this.setRow(logRow({ ...current, refundedBySeq: logged.seq }));
    this.write.refundMarks.push([orig.seq, logged.seq]);
    return approve(entryId, this.balance(wallet.num), 'done');
  }
}
