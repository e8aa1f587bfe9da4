import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './hex.ts';

describe('hex', () => {
  it('round-trips any bytes, a view into a larger buffer included, as lowercase hex', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), (bytes, pad) => {
        const backing = new Uint8Array(bytes.length + 2 * pad).fill(0xab);
        backing.set(bytes, pad);
        const view = backing.subarray(pad, pad + bytes.length);
        const hex = toHex(view);
        expect(hex).toBe([...bytes].map((b) => b.toString(16).padStart(2, '0')).join(''));
        expect(fromHex(hex)).toEqual(bytes);
      }),
    );
  });

  it('refuses uppercase and odd-length hex', () => {
    expect(() => fromHex('AB')).toThrow(TypeError);
    expect(() => fromHex('abc')).toThrow(TypeError);
  });
});
