import { describe, expect, it } from 'vitest';
import type { FareTable } from '../../protocol/index.ts';
import { fareTableAt, parseFareTableFile, quoteFare, type FareTableVersion } from './fare-tables.ts';

const table: FareTable = {
  currency: 'EUR',
  stations: { a: 0, b: 1, c: 3 },
  baseFareMinor: 150,
  perZoneMinor: 100,
  maxFareMinor: 600,
  maxTripMs: 3600_000,
  utcOffsetMinutes: 0,
  timeBands: [{ fromMinute: 7 * 60, toMinute: 9 * 60, percent: 150 }],
};
const NOON = Date.UTC(2026, 0, 5, 12, 0);

describe('fare tables (seed 004 claim 11)', () => {
  it('zone fare, peak band, maximum fare for missing/stale/unknown', () => {
    expect(quoteFare(table, { station: 'a', time: NOON - 600_000 }, 'c', NOON)).toMatchObject({ fareMinor: 450, reason: 'normal' });
    const peak = Date.UTC(2026, 0, 5, 8, 0);
    expect(quoteFare(table, { station: 'a', time: peak - 600_000 }, 'b', peak).fareMinor).toBe(375);
    expect(quoteFare(table, null, 'c', NOON)).toMatchObject({ fareMinor: 600, reason: 'missing_entry' });
    expect(quoteFare(table, { station: 'a', time: NOON - 2 * 3600_000 }, 'c', NOON)).toMatchObject({ fareMinor: 600, reason: 'stale_entry' });
    expect(quoteFare(table, { station: 'zz', time: NOON - 60_000 }, 'c', NOON)).toMatchObject({ fareMinor: 600, reason: 'unknown_station' });
  });

  it('settles with the version in force at the exit time', () => {
    const versions: FareTableVersion[] = [
      { version: 1, table, timeMs: 1000 },
      { version: 2, table: { ...table, baseFareMinor: 200 }, timeMs: 5000 },
    ];
    expect(fareTableAt(versions, 4999)?.version).toBe(1);
    expect(fareTableAt(versions, 5000)?.version).toBe(2);
    expect(fareTableAt(versions, 10)?.version).toBe(1);
    expect(fareTableAt([], 10)).toBeUndefined();
  });

  it('validates an imported fare table file', () => {
    expect(parseFareTableFile(table).ok).toBe(true);
    expect(parseFareTableFile({ ...table, maxFareMinor: -1 })).toMatchObject({ ok: false, field: 'maxFareMinor' });
    expect(parseFareTableFile({ ...table, maxFareMinor: table.baseFareMinor - 1 })).toMatchObject({ ok: false, field: 'maxFareMinor', message: expect.stringContaining('below baseFareMinor') });
    expect(parseFareTableFile({ ...table, maxFareMinor: table.baseFareMinor }).ok).toBe(true);
  });
});

describe('fare tables: time bands', () => {
  it('a band across midnight imports; an empty band (fromMinute == toMinute) is refused, naming the band', () => {
    expect(parseFareTableFile({ ...table, timeBands: [{ fromMinute: 22 * 60, toMinute: 2 * 60, percent: 80 }] }).ok).toBe(true);
    const empty = { ...table, timeBands: [table.timeBands[0], { fromMinute: 600, toMinute: 600, percent: 80 }] };
    expect(parseFareTableFile(empty)).toMatchObject({ ok: false, field: 'timeBands.1.toMinute', message: expect.stringContaining('equals fromMinute') });
  });
});

describe('fare tables: the clock of the time bands', () => {
  const { utcOffsetMinutes: _fixed, ...zoneless } = table;

  it('an IANA time zone instead of a fixed offset imports; both, neither, or a zone unknown to Intl is refused, naming the field', () => {
    expect(parseFareTableFile({ ...zoneless, timeZone: 'Europe/Berlin' })).toMatchObject({ ok: true, value: { timeZone: 'Europe/Berlin' } });
    expect(parseFareTableFile({ ...table, timeZone: 'Europe/Berlin' })).toMatchObject({ ok: false, field: 'utcOffsetMinutes', message: expect.stringContaining('not both') });
    expect(parseFareTableFile(zoneless)).toMatchObject({ ok: false, field: 'utcOffsetMinutes' });
    expect(parseFareTableFile({ ...zoneless, timeZone: 'Europe/Atlantis' })).toMatchObject({ ok: false, field: 'timeZone', message: expect.stringContaining('unknown time zone') });
    expect(parseFareTableFile({ ...zoneless, timeZone: '+01:00' })).toMatchObject({ ok: false, field: 'timeZone' });
  });
});
