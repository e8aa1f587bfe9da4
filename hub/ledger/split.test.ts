import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { depositCredits, shareOfMinor } from './split.ts';

describe('mall split (seed 003 claim 7)', () => {
  it('equals floor(amount × bps / 10000) exactly, up to MAX_SAFE_INTEGER', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 10_000 }), (amount, bps) => {
        expect(BigInt(shareOfMinor(amount, bps))).toBe((BigInt(amount) * BigInt(bps)) / 10_000n);
      }),
    );
  });

  it('credits sum to the amount; the remainder stays with the sub-merchant', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), fc.integer({ min: 0, max: 10_000 }), fc.nat(), (amount, bps, feeSeed) => {
        const fee = feeSeed % (amount + 1);
        const legs = depositCredits(amount, fee, { num: 10, parentNum: 20, shareBps: bps }, 30);
        expect(legs.reduce((s, [, a]) => s + a, 0)).toBe(amount);
        expect(legs.every(([, a]) => a > 0)).toBe(true);
      }),
    );
    expect(depositCredits(999, 10, { num: 1, parentNum: 2, shareBps: 1250 }, 3)).toEqual([
      [1, 866],
      [2, 123],
      [3, 10],
    ]);
    expect(depositCredits(5, 0, { num: 1, parentNum: null, shareBps: 0 }, 3)).toEqual([[1, 5]]);
  });

  it('refuses bad inputs', () => {
    expect(() => shareOfMinor(-1, 10)).toThrow(RangeError);
    expect(() => shareOfMinor(10, 10_001)).toThrow(RangeError);
    expect(() => depositCredits(10, 11, { num: 1, parentNum: null, shareBps: 0 }, 3)).toThrow(RangeError);
  });
});
