import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { computeFare } from './fares.ts';
import type { FareTable } from './schemas.ts';

const table: FareTable = {
  currency: 'EUR',
  stations: { a: 1, b: 2, c: 4 },
  baseFareMinor: 150,
  perZoneMinor: 80,
  maxFareMinor: 400,
  maxTripMs: 3 * 3600_000,
  utcOffsetMinutes: 60,
  timeBands: [{ fromMinute: 7 * 60, toMinute: 9 * 60, percent: 120 }],
};
const noon = Date.UTC(2026, 0, 5, 11, 0); // 12:00 local (UTC+1)
const rush = Date.UTC(2026, 0, 5, 7, 0); // 08:00 local

describe('computeFare', () => {
  it('charges base plus zones crossed, off-peak', () => {
    expect(computeFare(table, { station: 'a', time: noon - 600_000 }, 'b', noon)).toEqual({ fareMinor: 230, currency: 'EUR', reason: 'normal' });
    expect(computeFare(table, { station: 'b', time: noon - 600_000 }, 'b', noon).fareMinor).toBe(150);
  });
  it('applies the time band of the local exit time', () => {
    expect(computeFare(table, { station: 'a', time: rush - 600_000 }, 'b', rush).fareMinor).toBe(276);
  });
  it('caps at the maximum fare', () => {
    expect(computeFare(table, { station: 'a', time: rush - 600_000 }, 'c', rush)).toEqual({ fareMinor: 400, currency: 'EUR', reason: 'normal' });
  });
  it('charges the maximum fare for a missing, stale, future or unknown entry', () => {
    expect(computeFare(table, null, 'b', noon)).toMatchObject({ fareMinor: 400, reason: 'missing_entry' });
    expect(computeFare(table, { station: 'a', time: noon - 4 * 3600_000 }, 'b', noon)).toMatchObject({ fareMinor: 400, reason: 'stale_entry' });
    expect(computeFare(table, { station: 'a', time: noon + 1 }, 'b', noon)).toMatchObject({ reason: 'stale_entry' });
    expect(computeFare(table, { station: 'zz', time: noon - 1 }, 'b', noon)).toMatchObject({ fareMinor: 400, reason: 'unknown_station' });
  });
  it('never exceeds the maximum and is always an integer (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom('a', 'b', 'c'), fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: 4 * 3600_000 }), fc.integer({ min: 0, max: 2 ** 40 }), (from, to, trip, exit) => {
        const q = computeFare(table, { station: from, time: exit - trip }, to, exit);
        expect(Number.isSafeInteger(q.fareMinor)).toBe(true);
        expect(q.fareMinor).toBeLessThanOrEqual(table.maxFareMinor);
        expect(q.fareMinor).toBeGreaterThan(0);
      }),
    );
  });
});

describe('computeFare: a time band across midnight', () => {
  const night: FareTable = { ...table, utcOffsetMinutes: 0, timeBands: [{ fromMinute: 22 * 60, toMinute: 2 * 60, percent: 50 }] };
  const at = (h: number, m: number) => Date.UTC(2026, 0, 5, h, m);
  const fareAt = (exit: number) => computeFare(night, { station: 'a', time: exit - 600_000 }, 'b', exit).fareMinor;

  it('fromMinute > toMinute spans midnight: from 22:00 up to (not including) 02:00', () => {
    // base 150 + 1 zone × 80 = 230; at 50 %: 115.
    for (const [h, m] of [[22, 0], [23, 59], [0, 0], [1, 59]] as const) expect(fareAt(at(h, m)), `${h}:${m}`).toBe(115);
    for (const [h, m] of [[21, 59], [2, 0], [12, 0]] as const) expect(fareAt(at(h, m)), `${h}:${m}`).toBe(230);
  });
});
