/**
 * Merchant payouts (seed 001 fig. 11) go through a clearing adapter: a bank transfer or a
 * payment provider in production, a simulator here. Idempotent by payoutId.
 */
export interface ClearingTransfer {
  readonly payoutId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
}

export type ClearingResult = { ok: true; reference: string } | { ok: false; reason: string };

export interface ClearingAdapter {
  transfer(t: ClearingTransfer): Promise<ClearingResult>;
}

/** Records transfers in memory; `failNext` makes the next transfer fail (to test the retry path). */
export class SimulatedClearing implements ClearingAdapter {
  readonly transfers: ClearingTransfer[] = [];
  readonly #done = new Map<string, ClearingResult>();
  failNext = false;

  async transfer(t: ClearingTransfer): Promise<ClearingResult> {
    const known = this.#done.get(t.payoutId);
    if (known) return known;
    if (this.failNext) {
      this.failNext = false;
      return { ok: false, reason: 'simulated_bank_unavailable' };
    }
    this.transfers.push(t);
    const result: ClearingResult = { ok: true, reference: `SIM-${t.payoutId.slice(-12)}` };
    this.#done.set(t.payoutId, result);
    return result;
  }
}
