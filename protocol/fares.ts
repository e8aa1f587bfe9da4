/**
 * Gate fares (seed 004 claim 11): a pure function of the fare table, the entry record (or its
 * absence) and the exit. Shared by the gate (local decision) and the hub (settlement), so both
 * compute the same amount from the same table version.
 */
import type { FareTable } from './schemas.ts';

export type FareReason = 'normal' | 'missing_entry' | 'stale_entry' | 'unknown_station';

export interface FareQuote {
  fareMinor: number;
  currency: string;
  reason: FareReason;
}

export interface FareEntry {
  station: string;
  time: number;
}

const MINUTES_PER_DAY = 1440;

function localMinuteOfDay(timeMs: number, utcOffsetMinutes: number): number {
  const minutes = Math.floor(timeMs / 60_000) + utcOffsetMinutes;
  return ((minutes % MINUTES_PER_DAY) + MINUTES_PER_DAY) % MINUTES_PER_DAY;
}

interface TimeBand {
  fromMinute: number;
  toMinute: number;
}

/**
 * [fromMinute, toMinute) of the local day; from > to spans midnight (22:00–02:00 is 1320 → 120).
 * from == to is empty (the importer refuses it: whole day or nothing would be a guess).
 */
function inTimeBand(minute: number, band: TimeBand): boolean {
  if (band.fromMinute <= band.toMinute) return minute >= band.fromMinute && minute < band.toMinute;
  return minute >= band.fromMinute || minute < band.toMinute;
}

/** Percent of the base fare for the first band containing the exit's local time (100 when none). */
function bandPercent(table: FareTable, exitTimeMs: number): number {
  const minute = localMinuteOfDay(exitTimeMs, table.utcOffsetMinutes);
  const band = table.timeBands.find((b) => inTimeBand(minute, b));
  return band ? band.percent : 100;
}

export function computeFare(table: FareTable, entry: FareEntry | null, exitStation: string, exitTimeMs: number): FareQuote {
  const max = { fareMinor: table.maxFareMinor, currency: table.currency };
  if (!entry) return { ...max, reason: 'missing_entry' };
  const from = table.stations[entry.station];
  const to = table.stations[exitStation];
  if (from === undefined || to === undefined) return { ...max, reason: 'unknown_station' };
  // An entry in the future (clock skew beyond reason) or too old is treated as stale.
  if (exitTimeMs < entry.time || exitTimeMs - entry.time > table.maxTripMs) return { ...max, reason: 'stale_entry' };
  const zones = Math.abs(to - from);
  const base = table.baseFareMinor + zones * table.perZoneMinor;
  // Integer math only: round half up on the percent.
  const fare = Math.floor((base * bandPercent(table, exitTimeMs) + 50) / 100);
  return { fareMinor: Math.min(fare, table.maxFareMinor), currency: table.currency, reason: 'normal' };
}
