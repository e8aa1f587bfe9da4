import { describe, expect, it } from 'vitest';
import { CounterWindow, NonceCache, newChallenge, newRequestId, withinSkew } from './replay.ts';

describe('replay protection', () => {
  it('challenges and request ids carry 128 random bits', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newRequestId()));
    expect(ids.size).toBe(1000);
    expect(newChallenge()).toMatch(/^[0-9a-f]{32}$/);
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
  it('a nonce is fresh once per TTL and the cache stays bounded', () => {
    const c = new NonceCache(1000, 3);
    expect(c.claim('a', 0)).toBe(true);
    expect(c.claim('a', 500)).toBe(false);
    expect(c.claim('a', 1001)).toBe(true);
    for (const n of ['b', 'c', 'd', 'e']) expect(c.claim(n, 1002)).toBe(true);
  });
});
