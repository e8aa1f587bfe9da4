import { describe, expect, it } from 'vitest';
import { newRequestId } from '../../protocol/index.ts';
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

  it('gives payouts made in the same millisecond different references (payout ids start with their time)', async () => {
    const c = new SimulatedClearing();
    const refs = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await c.transfer({ payoutId: newRequestId(1_796_000_000_000), merchantId: 'snacks', amountMinor: 500, currency: 'EUR' });
      if (r.ok) refs.add(r.reference);
    }
    expect(refs.size).toBe(20);
  });
});
