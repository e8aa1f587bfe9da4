import { describe, expect, it } from 'vitest';
import { BloomFilter } from './bloom-filter.ts';

/** Deterministic ids shaped like the ledger's (32 hex chars). */
const id = (n: number, salt = 'a'): string => `${salt}${n.toString(16).padStart(31, '0')}`;

describe('BloomFilter', () => {
  it('never says no for a key it was given, across layers', () => {
    const f = new BloomFilter(1000);
    for (let i = 0; i < 10_000; i++) f.add(id(i));
    expect(f.layers).toBeGreaterThan(1);
    expect(f.keys).toBe(10_000);
    for (let i = 0; i < 10_000; i++) if (!f.mightContain(id(i))) throw new Error(`lost key ${i}`);
  });

  it('says no for almost every key it was not given, while within its size and after growing', () => {
    const f = new BloomFilter(20_000);
    for (let i = 0; i < 20_000; i++) f.add(id(i));
    const falsePositives = (): number => {
      let hits = 0;
      for (let i = 0; i < 50_000; i++) if (f.mightContain(id(i, 'b'))) hits++;
      return hits / 50_000;
    };
    expect(f.layers).toBe(1);
    expect(falsePositives()).toBeLessThan(0.02);
    for (let i = 20_000; i < 150_000; i++) f.add(id(i));
    expect(f.layers).toBe(4);
    expect(falsePositives()).toBeLessThan(0.05);
  });

  it('tells apart keys that differ in one character or in length', () => {
    const f = new BloomFilter(10);
    f.add('abc');
    expect(f.mightContain('abc')).toBe(true);
    expect(['abd', 'ab', 'abcc', 'bbc', ''].filter((k) => f.mightContain(k))).toEqual([]);
  });

  it('refuses a size that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new BloomFilter(bad)).toThrow(RangeError);
  });
});
