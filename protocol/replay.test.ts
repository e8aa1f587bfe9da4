import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CounterWindow, NonceCache, newChallenge, newRequestId, withinSkew } from './replay.ts';

describe('replay protection', () => {
  it('challenges carry 128 random bits; request ids 48 bits of time then 80 random, so they sort by time', () => {
    expect(newChallenge()).toMatch(/^[0-9a-f]{32}$/);
    const challenges = new Set(Array.from({ length: 1000 }, () => newChallenge().slice(0, 12)));
    expect(challenges.size).toBeGreaterThan(990);
    // Many in one millisecond: the same time prefix, still all different.
    const sameMs = Array.from({ length: 1000 }, () => newRequestId(1_796_000_000_123));
    expect(new Set(sameMs).size).toBe(1000);
    for (const id of sameMs) expect(id).toMatch(/^01a2[0-9a-f]{28}$/);
    expect(sameMs[0]!.slice(0, 12)).toBe((1_796_000_000_123).toString(16).padStart(12, '0'));
    // Sorted as text, ids follow their times.
    const times = [5, 1_796_000_000_000, 1_796_000_000_001, 2 ** 47, 2 ** 48 - 1];
    const ids = times.map((t) => newRequestId(t));
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    // Past 2^48 ms (year 10889) the time wraps; it never makes a longer id.
    expect(newRequestId(2 ** 48 + 7)).toMatch(/^000000000007[0-9a-f]{20}$/);
  });
  it('refuses a time that is not a non-negative integer of ms, rather than make an id the schema refuses', () => {
    for (const t of [-1, 1.5, NaN, Infinity, 2 ** 53]) expect(() => newRequestId(t), String(t)).toThrow(RangeError);
  });
  it('bounds clock skew', () => {
    expect(withinSkew(1000, 1000 + 300_000)).toBe(true);
    expect(withinSkew(1000, 1000 + 300_001)).toBe(false);
  });
  it('a counter is accepted once, out of order within the window', () => {
    const w = new CounterWindow(4);
    expect([5, 3, 5, 4, 3, 9, 4, 5, 6].map((c) => w.accept(c))).toEqual([true, true, false, true, false, true, false, false, true]);
    const restored = new CounterWindow(4, w.state());
    expect(restored.accept(9)).toBe(false);
    expect(restored.accept(8)).toBe(true);
    expect(restored.accept(-1)).toBe(false);
  });
  it('a counter window behaves as the set of counters it stands for, also after a restore (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), fc.array(fc.integer({ min: -2, max: 300 }), { maxLength: 200 }), fc.nat(200), (size, counters, cut) => {
        let w = new CounterWindow(size);
        const seen = new Set<number>();
        let highest = -1;
        counters.forEach((c, n) => {
          if (n === cut) w = new CounterWindow(size, JSON.parse(JSON.stringify(w.state())) as { highest: number; mask: string });
          const expected = c >= 0 && c > highest - size && !seen.has(c);
          if (expected) {
            seen.add(c);
            highest = Math.max(highest, c);
          }
          expect(w.accept(c)).toBe(expected);
        });
      }),
      { numRuns: 300 },
    );
  });
  it('reads the older list form of its state, and its own state stays small', () => {
    const w = new CounterWindow(1024, { highest: 2000, seen: [2000, 1990, 500] });
    expect(w.accept(1990)).toBe(false);
    expect(w.accept(1991)).toBe(true);
    expect(w.accept(500)).toBe(false); // out of the window anyway
    for (let c = 2001; c < 10_000; c++) w.accept(c);
    expect(JSON.stringify(w.state()).length).toBeLessThan(300);
  });
  it('a nonce is fresh once per TTL (its last millisecond included) and the cache stays bounded without forgetting a live one', () => {
    const c = new NonceCache(1000, 3);
    expect(c.claim('a', 0)).toBe('fresh');
    expect(c.claim('a', 500)).toBe('replay');
    expect(c.claim('a', 1000)).toBe('replay');
    expect(c.claim('a', 1001)).toBe('fresh');
    expect(c.claim('b', 1001)).toBe('fresh');
    expect(c.claim('c', 1001)).toBe('fresh');
    expect(c.claim('d', 1002)).toBe('full'); // three live nonces: none is forgotten
    expect(c.claim('a', 1500)).toBe('replay');
    expect(c.claim('d', 2002)).toBe('fresh'); // a, b and c have expired and make room
    expect(c.claim('b', 2002)).toBe('fresh');
  });
});
