import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { computeFare } from './fares.ts';
import { DEFAULT_MAX_SKEW_MS } from './replay.ts';
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
    expect(computeFare(table, { station: 'a', time: noon + DEFAULT_MAX_SKEW_MS + 1 }, 'b', noon)).toMatchObject({ reason: 'stale_entry' });
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

describe('computeFare: a table in an IANA time zone follows daylight saving time', () => {
  // Europe/Berlin: CET (UTC+1) until 2026-03-29 01:00 UTC, then CEST (UTC+2) until 2026-10-25 01:00 UTC.
  const { utcOffsetMinutes: _fixed, ...rest } = table;
  const berlin: FareTable = { ...rest, timeZone: 'Europe/Berlin' };
  const fareAt = (t: FareTable, exit: number) => computeFare(t, { station: 'a', time: exit - 600_000 }, 'b', exit).fareMinor;
  const OFF_PEAK = 230;
  const RUSH = 276; // 07:00–09:00 local at 120 %

  it('the 07:00–09:00 band is 07:00–09:00 on the wall clock in winter and in summer', () => {
    const cases: [string, number, number][] = [
      ['Sat 28 Mar, 06:30 CET', Date.UTC(2026, 2, 28, 5, 30), OFF_PEAK],
      ['Sat 28 Mar, 07:30 CET', Date.UTC(2026, 2, 28, 6, 30), RUSH],
      ['Mon 30 Mar, 07:30 CEST', Date.UTC(2026, 2, 30, 5, 30), RUSH],
      ['Mon 30 Mar, 09:30 CEST', Date.UTC(2026, 2, 30, 7, 30), OFF_PEAK],
      ['Sat 24 Oct, 07:30 CEST', Date.UTC(2026, 9, 24, 5, 30), RUSH],
      ['Mon 26 Oct, 07:30 CET', Date.UTC(2026, 9, 26, 6, 30), RUSH],
      ['Mon 26 Oct, 06:30 CET', Date.UTC(2026, 9, 26, 5, 30), OFF_PEAK],
    ];
    for (const [what, exit, fare] of cases) expect(fareAt(berlin, exit), what).toBe(fare);
    // The fixed UTC+1 of the same table is an hour off all summer.
    expect(fareAt(table, Date.UTC(2026, 2, 30, 5, 30))).toBe(OFF_PEAK);
  });

  it('the clock jumps at the change: 01:59:59 CET is followed by 03:00 CEST', () => {
    const night: FareTable = { ...berlin, timeBands: [{ fromMinute: 60, toMinute: 180, percent: 50 }] };
    expect(fareAt(night, Date.UTC(2026, 2, 29, 0, 59, 59))).toBe(115);
    expect(fareAt(night, Date.UTC(2026, 2, 29, 1, 0, 0))).toBe(OFF_PEAK);
  });

  it('is an integer within the cap at any time, also past the range of Date (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 * 3600_000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (trip, exit) => {
        const q = computeFare(berlin, { station: 'a', time: exit - trip }, 'c', exit);
        expect(Number.isSafeInteger(q.fareMinor)).toBe(true);
        expect(q.fareMinor).toBeLessThanOrEqual(berlin.maxFareMinor);
      }),
    );
  });
});

describe("computeFare: the entry gate's clock ahead of the exit's", () => {
  it("an entry up to the protocol's clock skew in the future is a trip that started at the exit, not the maximum fare", () => {
    for (const aheadMs of [1, 3_000, DEFAULT_MAX_SKEW_MS]) {
      expect(computeFare(table, { station: 'a', time: noon + aheadMs }, 'b', noon), `${aheadMs} ms ahead`).toEqual({ fareMinor: 230, currency: 'EUR', reason: 'normal' });
    }
    // The band is still the exit's.
    expect(computeFare(table, { station: 'a', time: rush + 3_000 }, 'b', rush).fareMinor).toBe(276);
    expect(computeFare(table, { station: 'a', time: noon + DEFAULT_MAX_SKEW_MS + 1 }, 'b', noon)).toMatchObject({ fareMinor: 400, reason: 'stale_entry' });
  });
});

describe('computeFare: an exit at the station of entry (an operator choice, protocol/README.md)', () => {
  it('pays the base fare times its band for any trip up to maxTripMs, a minute included; the maximum past it', () => {
    expect(computeFare(table, { station: 'b', time: noon - 60_000 }, 'b', noon)).toEqual({ fareMinor: 150, currency: 'EUR', reason: 'normal' });
    expect(computeFare(table, { station: 'b', time: noon - table.maxTripMs }, 'b', noon).fareMinor).toBe(150);
    expect(computeFare(table, { station: 'b', time: rush - 60_000 }, 'b', rush).fareMinor).toBe(180);
    expect(computeFare(table, { station: 'b', time: noon - table.maxTripMs - 1 }, 'b', noon)).toMatchObject({ fareMinor: 400, reason: 'stale_entry' });
  });
});
