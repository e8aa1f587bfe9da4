import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { canonicalJson, type JcsMemo } from './canonical.ts';
import { decodeMessage, encodeMessage } from './codec.ts';
import { MESSAGE_TYPES } from './schemas.ts';
import { safeJson } from './test-helpers.ts';
import { buildSampleMessages } from './vectors/messages.ts';

/** A copy with every object's keys inserted in sorted order (the order JSON.stringify then writes). */
function sortedCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedCopy);
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value).sort();
  return Object.fromEntries(keys.map((k) => [k, sortedCopy((value as Record<string, unknown>)[k])]));
}

// The `canonicalize` package (RFC 8785's reference-style implementation) is the oracle.
const oracle = canonicalize as unknown as (v: unknown) => string;

describe('canonicalJson (RFC 8785 JCS)', () => {
  it('equals the canonicalize package on any safe JSON value', () => {
    fc.assert(
      fc.property(safeJson, (value) => {
        expect(canonicalJson(value)).toBe(oracle(value));
      }),
      { numRuns: 1000 },
    );
  });

  it('equals the canonicalize package on values already in canonical order (the native serializer path)', () => {
    fc.assert(
      fc.property(safeJson, (value) => {
        const sorted = sortedCopy(value);
        expect(canonicalJson(sorted)).toBe(oracle(sorted));
      }),
      { numRuns: 1000 },
    );
    // A value in canonical order is handed to the native serializer whole; any other is not.
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      const sorted = { a: [1, { b: 'x', c: null }], d: true };
      const unsorted = { d: true, a: [1, { c: null, b: 'x' }] };
      expect(canonicalJson(sorted)).toBe(canonicalJson(unsorted));
      expect(stringify.mock.calls.filter(([v]) => v === sorted)).toHaveLength(1);
      expect(stringify.mock.calls.filter(([v]) => v === unsorted)).toHaveLength(0);
    } finally {
      stringify.mockRestore();
    }
    // A toJSON that is not enumerable is still honoured.
    const hidden = { a: 1 };
    Object.defineProperty(hidden, 'toJSON', { value: () => ({ z: 1, a: 2 }), enumerable: false });
    expect(canonicalJson(hidden)).toBe('{"a":2,"z":1}');
    // Integer-like keys are enumerated first, in numeric order: not canonical, so rendered.
    expect(canonicalJson({ '2': 0, '10': 1, a: 2 })).toBe('{"10":1,"2":0,"a":2}');
    expect(canonicalJson({ a: { toJSON: () => 'x' }, b: 1 })).toBe('{"a":"x","b":1}');
  });

  it('decoded messages come out in canonical key order, so their JSON.stringify is their JCS', () => {
    // Every schema object's shape is sorted (schemas.ts); a record keeps its input's order.
    for (const message of buildSampleMessages().filter((m) => m.type !== 'announce.fares')) {
      const decoded = decodeMessage(encodeMessage(message), MESSAGE_TYPES);
      if (!decoded.ok) throw new Error(`${message.type}: ${decoded.detail}`);
      expect(JSON.stringify(decoded.value.body), message.type).toBe(oracle(decoded.value.body));
    }
  });

  it('sorts large objects by UTF-16 code units too (past the in-place sort)', () => {
    const keys = ['€', '😀', 'ﬀ', 'a', 'B', '\u0000', 'aa', ...Array.from({ length: 40 }, (_, i) => `k${(i * 7919) % 97}`)];
    const value = Object.fromEntries(keys.map((k, i) => [k, i]));
    expect(canonicalJson(value)).toBe(oracle(value));
    expect(canonicalJson({ '😀': 1, 'ﬀ': 2 })).toBe('{"😀":1,"ﬀ":2}'); // a surrogate pair sorts below U+FB00
  });

  it('refuses floats, unsafe integers and non-finite numbers, naming where they are', () => {
    expect(() => canonicalJson({ a: [1, { b: 0.5 }] })).toThrow(/\$\.a\[1\]\.b is not a safe integer/);
    for (const bad of [1.5, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity, [2 ** 60]]) expect(() => canonicalJson(bad)).toThrow(TypeError);
    expect(() => canonicalJson(10n)).toThrow(/BigInt/);
    expect(() => canonicalJson(undefined)).toThrow(/no JSON form/);
  });

  it('leaves out undefined properties, writes undefined array items as null, and honours toJSON', () => {
    expect(canonicalJson({ b: undefined, a: [undefined, 1] })).toBe('{"a":[null,1]}');
    const at = new Date(0);
    expect(canonicalJson({ at })).toBe(oracle({ at }));
  });

  it('with a memo, splices known texts and remembers the top value and what is under the keys it names', () => {
    const inner = { z: 1, y: 2 };
    const outer = { body: inner, other: { x: 3 } };
    const memo: JcsMemo = { texts: new Map(), remembers: (k) => k === 'body' };
    expect(canonicalJson(outer, memo)).toBe('{"body":{"y":2,"z":1},"other":{"x":3}}');
    expect([...memo.texts.keys()]).toEqual([inner, outer]);
    // A remembered text is used as is (which is why objects must not change once rendered).
    memo.texts.set(inner, '{"spliced":true}');
    expect(canonicalJson({ a: inner }, memo)).toBe('{"a":{"spliced":true}}');
  });
});
