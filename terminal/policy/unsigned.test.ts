import { describe, expect, it } from 'vitest';
import {
  addUnsignedPassage, hasUnsignedPassage, MAX_UNSIGNED_PASSAGES, parseUnsignedPassages, UNSIGNED_RETAIN_MS, unsignedPeriodMinor, unsignedWalletMinor, type UnsignedPassage,
} from './unsigned.ts';

const DAY = 24 * 3600_000;
const p = (requestId: string, wallet: string, amountMinor: number, uptimeMs: number): UnsignedPassage => ({ requestId, wallet, amountMinor, timeMs: 1e12 + uptimeMs, uptimeMs });

describe('unsigned passages', () => {
  it('count toward the wallet (whatever their date) and the period of running time; one entry per request', () => {
    let list: UnsignedPassage[] = [];
    list = addUnsignedPassage(list, p('r1', 'w1', 600, 1000));
    list = addUnsignedPassage(list, p('r2', 'w2', 300, 2 * DAY));
    list = addUnsignedPassage(list, p('r2', 'w2', 300, 2 * DAY)); // the same incident again
    expect(unsignedWalletMinor(list, 'w1', 2 * DAY)).toBe(600);
    expect(unsignedWalletMinor(list, 'w2', 2 * DAY)).toBe(300);
    expect(unsignedWalletMinor(list, 'w3', 2 * DAY)).toBe(0);
    expect(unsignedPeriodMinor(list, 2 * DAY, DAY)).toBe(300);
    expect(unsignedPeriodMinor(list, 2 * DAY, 3 * DAY)).toBe(900);
    expect(hasUnsignedPassage(list, 'w1', 2 * DAY)).toBe(true);
    expect(hasUnsignedPassage(list, 'w3', 2 * DAY)).toBe(false);
  });

  it('a local decision the hub refused counts toward the wallet, not again toward the period (its outbox row does)', () => {
    const list = addUnsignedPassage([], { ...p('r1', 'w1', 400, DAY), inOutbox: true });
    expect(unsignedWalletMinor(list, 'w1', DAY)).toBe(400);
    expect(hasUnsignedPassage(list, 'w1', DAY)).toBe(true);
    expect(unsignedPeriodMinor(list, DAY, DAY)).toBe(0);
    expect(parseUnsignedPassages(JSON.stringify(list))).toEqual(list);
  });

  it('survive a round trip through the store; expire after the retention; are bounded', () => {
    const list = addUnsignedPassage([], p('r1', 'w1', 600, 0));
    expect(parseUnsignedPassages(JSON.stringify(list))).toEqual(list);
    expect(parseUnsignedPassages('not json')).toEqual([]);
    expect(parseUnsignedPassages(undefined)).toEqual([]);
    expect(hasUnsignedPassage(list, 'w1', UNSIGNED_RETAIN_MS + 1)).toBe(false);
    expect(addUnsignedPassage(list, p('r2', 'w2', 1, UNSIGNED_RETAIN_MS + 1)).map((x) => x.requestId)).toEqual(['r2']);
    let big: UnsignedPassage[] = [];
    for (let i = 0; i < MAX_UNSIGNED_PASSAGES + 5; i++) big = addUnsignedPassage(big, p(`r${i}`, 'w', 1, i));
    expect(big).toHaveLength(MAX_UNSIGNED_PASSAGES);
    expect(big[0]?.requestId).toBe('r5');
  });
});
