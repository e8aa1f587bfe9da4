// Mall revenue split (seed 003 claim 7): a sub-merchant's deposit is shared with its parent.
// Integer math only; the parent gets floor(amount × bps / 10000), the remainder stays with the
// sub-merchant, so the split is deterministic and never creates or loses a minor unit.

export const BPS_DENOMINATOR = 10_000;

/** floor(amountMinor × shareBps / 10000) without leaving the safe integer range. */
export function shareOfMinor(amountMinor: number, shareBps: number): number {
  if (!Number.isSafeInteger(amountMinor) || amountMinor < 0) throw new RangeError(`amountMinor=${amountMinor}`);
  if (!Number.isInteger(shareBps) || shareBps < 0 || shareBps > BPS_DENOMINATOR) throw new RangeError(`shareBps=${shareBps}`);
  // amount = q·10000 + r  ⇒  floor(amount·bps/10000) = q·bps + floor(r·bps/10000); every term ≤ amount.
  const q = Math.floor(amountMinor / BPS_DENOMINATOR);
  const r = amountMinor - q * BPS_DENOMINATOR;
  return q * shareBps + Math.floor((r * shareBps) / BPS_DENOMINATOR);
}

export interface PayeeShape {
  readonly num: number;
  readonly parentNum: number | null;
  readonly shareBps: number;
}

/**
 * Credits for a merchant deposit of amountMinor, of which feeMinor goes to the fees account and
 * the parent's share of the rest to the parent. Zero legs are left out; legs sum to amountMinor.
 */
export function depositCredits(amountMinor: number, feeMinor: number, payee: PayeeShape, feesNum: number): Array<[num: number, amountMinor: number]> {
  if (feeMinor < 0 || feeMinor > amountMinor) throw new RangeError(`feeMinor=${feeMinor} of ${amountMinor}`);
  const net = amountMinor - feeMinor;
  const parentShare = payee.parentNum !== null ? shareOfMinor(net, payee.shareBps) : 0;
  const legs: Array<[number, number]> = [];
  if (net - parentShare > 0) legs.push([payee.num, net - parentShare]);
  if (parentShare > 0 && payee.parentNum !== null) legs.push([payee.parentNum, parentShare]);
  if (feeMinor > 0) legs.push([feesNum, feeMinor]);
  return legs;
}
