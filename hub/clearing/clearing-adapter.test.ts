import { describe, expect, it } from 'vitest';
import { SimulatedClearing, type ClearingAdapter } from './clearing-adapter.ts';

/** Contract every clearing adapter passes: idempotent by payout id. */
function contract(name: string, make: () => ClearingAdapter): void {
  describe(`clearing adapter contract: ${name}`, () => {
    it('answers a repeated payout id with the first answer and pays once', async () => {
      const c = make();
      const t = { payoutId: 'ab'.repeat(16), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' };
      const first = await c.transfer(t);
      expect(first.ok).toBe(true);
      expect(await c.transfer(t)).toEqual(first);
    });
  });
}

contract('SimulatedClearing', () => new SimulatedClearing());

describe('SimulatedClearing', () => {
  it('fails once on demand, then succeeds with the same id', async () => {
    const c = new SimulatedClearing();
    c.failNext = true;
    const t = { payoutId: 'cd'.repeat(16), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' };
    expect(await c.transfer(t)).toEqual({ ok: false, reason: 'simulated_bank_unavailable' });
    expect((await c.transfer(t)).ok).toBe(true);
    expect(c.transfers).toHaveLength(1);
  });
});
