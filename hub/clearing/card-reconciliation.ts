/**
 * Card top-ups reconciled with the acquirer (pure). The hub credits a wallet only after the
 * acquirer approved the card, and voids an approval it could not credit (settlement-service.ts,
 * `#cardTopup`); a void that never arrived, an approval the acquirer later dropped, or a report
 * that disagrees is found here, by request id, before the money is paid out:
 *
 * - **charged, not credited**: the acquirer charged a card and no wallet got the money (no ledger
 *   row, or the ledger declined it): give it back to the card at the acquirer.
 * - **credited, not charged**: a wallet got money in the period that no charge in the report names
 *   (listed all the same when the acquirer may report it in its next period: a top-up made just
 *   before the period's end; the operator checks it against that report).
 * - **mismatched**: both sides know the request, with another amount, currency or wallet.
 * - **duplicate charges**: the report lists a request id twice.
 */
import { TapsettleError } from '../../protocol/index.ts';
import type { LogState } from '../ledger/types.ts';
import { engineRequestId } from '../service/engine-ids.ts';
import type { AcquirerChargeT } from './acquirer-report.ts';

/** A card top-up as the ledger has it. */
export interface LedgerCardCredit {
  readonly seq: number;
  /** The ledger's request id (`engineRequestId` of the wire request id). */
  readonly ledgerRequestId: string;
  /** The wallet credited (its public key); null if its account is gone. */
  readonly wallet: string | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly state: LogState;
  readonly atMs: number;
}

export interface CardReconciliationInput {
  readonly fromMs: number;
  readonly toMs: number;
  readonly charges: readonly AcquirerChargeT[];
  /** The ledger's card top-ups last written in [fromMs, toMs). */
  readonly creditsInPeriod: readonly LedgerCardCredit[];
  /** The ledger's rows of the charges' request ids, wherever in time they are (by ledger request id). */
  readonly creditsOfCharges: ReadonlyMap<string, LedgerCardCredit>;
}

export interface CardReconciliation {
  /** No discrepancy of any kind. */
  readonly ok: boolean;
  readonly fromMs: number;
  readonly toMs: number;
  readonly matched: { readonly count: number; readonly totalsMinor: Readonly<Record<string, number>> };
  readonly chargedNotCredited: ReadonlyArray<{ readonly charge: AcquirerChargeT; readonly ledger: LedgerCardCredit | null }>;
  readonly creditedNotCharged: readonly LedgerCardCredit[];
  readonly mismatched: ReadonlyArray<{ readonly charge: AcquirerChargeT; readonly credit: LedgerCardCredit; readonly fields: readonly string[] }>;
  readonly duplicateCharges: readonly AcquirerChargeT[];
}

/** Only a declined row credited nothing: a logged or withdrawn top-up is finished by the ledger's recovery. */
function credited(c: LedgerCardCredit): boolean {
  return c.state !== 'declined';
}

export function reconcileCardTopups(input: CardReconciliationInput): CardReconciliation {
  const totalsMinor: Record<string, number> = {};
  let count = 0;
  const chargedNotCredited: Array<{ charge: AcquirerChargeT; ledger: LedgerCardCredit | null }> = [];
  const mismatched: Array<{ charge: AcquirerChargeT; credit: LedgerCardCredit; fields: string[] }> = [];
  const duplicateCharges: AcquirerChargeT[] = [];
  /** Ledger request ids the report accounts for (matched or not). */
  const reported = new Set<string>();
  for (const charge of input.charges) {
    const id = engineRequestId(charge.requestId);
    if (reported.has(id)) {
      duplicateCharges.push(charge);
      continue;
    }
    reported.add(id);
    const credit = input.creditsOfCharges.get(id) ?? null;
    if (credit === null || !credited(credit)) {
      chargedNotCredited.push({ charge, ledger: credit });
      continue;
    }
    const fields = [
      ...(credit.amountMinor !== charge.amountMinor ? ['amountMinor'] : []),
      ...(credit.currency !== charge.currency ? ['currency'] : []),
      ...(charge.wallet !== undefined && credit.wallet !== charge.wallet ? ['wallet'] : []),
    ];
    if (fields.length > 0) {
      mismatched.push({ charge, credit, fields });
      continue;
    }
    count += 1;
    const total = (totalsMinor[charge.currency] ?? 0) + charge.amountMinor;
    if (!Number.isSafeInteger(total)) throw new TapsettleError('AMOUNT_INVALID', `the ${charge.currency} total overflows the safe integer range: split the report`);
    totalsMinor[charge.currency] = total;
  }
  const creditedNotCharged = input.creditsInPeriod.filter((c) => credited(c) && !reported.has(c.ledgerRequestId));
  return {
    ok: chargedNotCredited.length === 0 && creditedNotCharged.length === 0 && mismatched.length === 0 && duplicateCharges.length === 0,
    fromMs: input.fromMs,
    toMs: input.toMs,
    matched: { count, totalsMinor },
    chargedNotCredited,
    creditedNotCharged,
    mismatched,
    duplicateCharges,
  };
}
