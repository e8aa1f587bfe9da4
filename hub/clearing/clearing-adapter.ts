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

/**
 * Records transfers in memory (each payout id pays once: `transfers`). Fault injection for the
 * retry path: `failNext` fails the next transfer, `unavailable` every one until it is cleared;
 * `attempts` counts every call, answered or failed.
 */
export class SimulatedClearing implements ClearingAdapter {
  readonly transfers: ClearingTransfer[] = [];
  readonly #done = new Map<string, ClearingResult>();
  failNext = false;
  unavailable = false;
  attempts = 0;

  async transfer(t: ClearingTransfer): Promise<ClearingResult> {
    this.attempts++;
    const known = this.#done.get(t.payoutId);
    if (known) return known;
    if (this.failNext || this.unavailable) {
      this.failNext = false;
      return { ok: false, reason: 'simulated_bank_unavailable' };
    }
    this.transfers.push(t);
    const result: ClearingResult = { ok: true, reference: `SIM-${t.payoutId.slice(-12)}` };
    this.#done.set(t.payoutId, result);
    return result;
  }
}
