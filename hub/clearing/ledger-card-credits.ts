/** What card-reconciliation.ts compares, read from the ledger (read-only; works while the hub runs). */
import type { LedgerStore, LogRow } from '../ledger/store.ts';
import { engineRequestId } from '../service/engine-ids.ts';
import { InputError } from '../service/input-error.ts';
import type { AcquirerReportT } from './acquirer-report.ts';
import { reconcileCardTopups, type CardReconciliation, type LedgerCardCredit } from './card-reconciliation.ts';

/** Card top-ups read for one period at most; a longer period is reconciled in parts. */
export const MAX_PERIOD_CREDITS = 1_000_000;

function isCardTopup(r: LogRow): boolean {
  return r.kind === 'topup' && r.memo !== null && r.memo.startsWith('card');
}

async function withWallets(store: LedgerStore, rows: readonly LogRow[]): Promise<LedgerCardCredit[]> {
  const nums = [...new Set(rows.flatMap((r) => (r.payeeNum === null ? [] : [r.payeeNum])))];
  const accounts = await store.accountsByNum(nums);
  return rows.map((r) => ({
    seq: r.seq,
    ledgerRequestId: r.requestId,
    wallet: r.payeeNum === null ? null : (accounts.get(r.payeeNum)?.id ?? null),
    amountMinor: r.amountMinor,
    currency: r.currency,
    state: r.state,
    atMs: r.atMs,
  }));
}

/** Reconciles the acquirer's report with the ledger's card top-ups of [fromMs, toMs). */
export async function reconcileCardsWithLedger(store: LedgerStore, report: AcquirerReportT, fromMs: number, toMs: number): Promise<CardReconciliation> {
  const inPeriod = await store.cardTopups(fromMs, toMs, MAX_PERIOD_CREDITS + 1);
  if (inPeriod.length > MAX_PERIOD_CREDITS) throw new InputError('to', `more than ${MAX_PERIOD_CREDITS} card top-ups in the period: reconcile a shorter one`);
  const byId = await store.logByRequestIds([...new Set(report.charges.map((c) => engineRequestId(c.requestId)))]);
  // A row of another kind under a charge's id credited nothing for it.
  const ofCharges = await withWallets(store, [...byId.values()].filter(isCardTopup));
  return reconcileCardTopups({
    fromMs,
    toMs,
    charges: report.charges,
    creditsInPeriod: await withWallets(store, inPeriod),
    creditsOfCharges: new Map(ofCharges.map((c) => [c.ledgerRequestId, c])),
  });
}
