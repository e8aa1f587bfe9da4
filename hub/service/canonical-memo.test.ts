import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalJson, linesDigest, toHex } from '../../protocol/index.ts';
import { CanonicalMemo } from './canonical-memo.ts';
import { safeJson } from '../../protocol/test-helpers.ts';

describe('CanonicalMemo', () => {
  it('equals protocol canonicalJson and canonicalBytes on any safe JSON value', () => {
    fc.assert(
      fc.property(safeJson, (value) => {
        const memo = new CanonicalMemo();
        expect(memo.json(value)).toBe(canonicalJson(value));
        expect(memo.json(value)).toBe(canonicalJson(value)); // second time from the memo
        expect(toHex(memo.bytes('settlement.request', value))).toBe(toHex(canonicalBytes('settlement.request', value)));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses what protocol refuses: floats and unsafe integers, anywhere', () => {
    const memo = new CanonicalMemo();
    for (const bad of [1.5, Number.MAX_SAFE_INTEGER + 1, NaN, { a: [1, { b: 0.1 }] }]) {
      expect(() => canonicalJson(bad)).toThrow(TypeError);
      expect(() => memo.json(bad)).toThrow(TypeError);
    }
  });

  it('drops undefined properties and writes undefined array items as null, as JCS libraries do', () => {
    const v = { b: undefined, a: [undefined, 1] };
    expect(new CanonicalMemo().json(v)).toBe(canonicalJson(v));
  });

  it('gives the lines digest protocol gives', () => {
    const lines = [{ sku: 'cola', qty: 2, unitMinor: 250 }, { sku: 'é€😀', qty: 1, unitMinor: 1 }];
    const memo = new CanonicalMemo();
    expect(createHash('sha256').update(memo.json(lines)).digest('hex')).toBe(linesDigest(lines));
  });
});
