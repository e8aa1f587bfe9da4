/**
 * The card acquirer's settlement report, as the operator hands it to `tapsettle reconcile-cards`:
 * every card authorization the acquirer charged (captured and not reversed) in a period, keyed by
 * the request id the hub authorized it under (the idempotency key it sent: card-authorizer.ts).
 * An acquirer's own export (CSV, ISO 20022 camt.053) is converted to this JSON first.
 */
import { z } from 'zod';
import { AmountMinor, Currency, PublicKeyHex, RequestId } from '../../protocol/index.ts';
import { parseWith, type ParseResult } from '../rules/catalog.ts';

/** Large enough for a year of a busy site's card top-ups; a bigger report is split by period. */
export const MAX_REPORT_CHARGES = 1_000_000;

export const AcquirerCharge = z.strictObject({
  requestId: RequestId,
  amountMinor: AmountMinor.min(1),
  currency: Currency,
  /** The wallet the authorization named as its reference, when the acquirer reports it. */
  wallet: PublicKeyHex.optional(),
  authCode: z.string().min(1).max(64).optional(),
});
export type AcquirerChargeT = z.infer<typeof AcquirerCharge>;

export const AcquirerReport = z.strictObject({
  charges: z.array(AcquirerCharge).max(MAX_REPORT_CHARGES),
});
export type AcquirerReportT = z.infer<typeof AcquirerReport>;

/** Validates untrusted JSON; names the first bad field (`charges.3.amountMinor`). */
export function parseAcquirerReport(raw: unknown): ParseResult<AcquirerReportT> {
  return parseWith(AcquirerReport, raw);
}
