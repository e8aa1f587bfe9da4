// verify-ledger: recompute every balance from the journal and check that money is conserved.
import type { LedgerStore } from './store.ts';
import type { Account } from './types.ts';

export type Discrepancy =
  | { readonly kind: 'entry_unbalanced'; readonly entryId: number; readonly sumMinor: number }
  | { readonly kind: 'entry_currency'; readonly entryId: number }
  | { readonly kind: 'entry_empty'; readonly entryId: number }
  | { readonly kind: 'balance_mismatch'; readonly accountId: string; readonly storedMinor: number; readonly journalMinor: number }
  | { readonly kind: 'negative_balance'; readonly accountId: string; readonly balanceMinor: number }
  | { readonly kind: 'in_transit_mismatch'; readonly currency: string; readonly accountMinor: number; readonly logMinor: number }
  | { readonly kind: 'holds_mismatch'; readonly currency: string; readonly accountMinor: number; readonly holdsMinor: number }
  | { readonly kind: 'not_conserved'; readonly currency: string; readonly issuedMinusRedeemedMinor: number; readonly heldMinor: number };

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

function mayBeNegative(a: Account): boolean {
  // The float is negative by design; an overspent wallet (seed 002) is the one allowed exception.
  return a.kind === 'float' || (a.kind === 'wallet' && (a.flags & 1) !== 0);
}

export async function verifyLedger(store: LedgerStore): Promise<VerifyReport> {
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
  return { ok: found.length === 0, accounts: accounts.length, currencies, firstDiscrepancy: found[0] ?? null, discrepancies: found };
}
