/**
 * Ledger verification as the operator and the dashboard see it (issue 3 verify-ledger):
 * recompute every balance from the journal, check each entry balances, and check conservation
 * (Σ balances = 0 per currency; the in-transit and holds accounts equal what the log says).
 * Reads only the LedgerStore port, so it works on any store that passes the contract suite.
 */
import type { LedgerStore } from '../ledger/store.ts';

export interface LedgerCheck {
  readonly ok: boolean;
  readonly accounts: number;
  /** Human-readable, first discrepancy first. */
  readonly discrepancies: string[];
}

export async function checkLedger(store: LedgerStore, maxReported = 20): Promise<LedgerCheck> {
  const out: string[] = [];
  const accounts = await store.listAccounts();
  const sums = await store.postingSumsByAccount();
  const byCurrency = new Map<string, number>();
  for (const a of accounts) {
    const sum = sums.get(a.num) ?? 0;
    if (sum !== a.balanceMinor) out.push(`account ${a.id}: balance ${a.balanceMinor} but journal sums to ${sum}`);
    byCurrency.set(a.currency, (byCurrency.get(a.currency) ?? 0) + a.balanceMinor);
  }
  for (const e of await store.badEntries(maxReported)) out.push(`journal entry ${e.entryId}: ${e.reason} (sum ${e.sumMinor})`);
  for (const [currency, total] of byCurrency) if (total !== 0) out.push(`${currency}: balances sum to ${total}, not 0`);
  const inTransit = new Map((await store.inTransitTotals()).map((t) => [t.currency, t.amountMinor]));
  const held = new Map((await store.heldTotals()).map((t) => [t.currency, t.amountMinor]));
  for (const a of accounts) {
    if (a.kind === 'in_transit' && a.balanceMinor !== (inTransit.get(a.currency) ?? 0)) {
      out.push(`${a.currency}: in-transit account ${a.balanceMinor} but log says ${inTransit.get(a.currency) ?? 0}`);
    }
    if (a.kind === 'holds' && a.balanceMinor !== (held.get(a.currency) ?? 0)) {
      out.push(`${a.currency}: holds account ${a.balanceMinor} but open holds sum to ${held.get(a.currency) ?? 0}`);
    }
  }
  return { ok: out.length === 0, accounts: accounts.length, discrepancies: out.slice(0, maxReported) };
}
