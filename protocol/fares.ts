/**
 * Gate fares (seed 004 claim 11): a pure function of the fare table, the entry record (or its
 * absence) and the exit. Shared by the gate (local decision) and the hub (settlement), so both
 * compute the same amount from the same table version.
 */
import { DEFAULT_MAX_SKEW_MS } from './replay.ts';
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

/**
 * An entry this far in the future of the exit gate's clock is the two gates' clocks disagreeing
 * (a Pi has no real-time clock), not a trip: the protocol's clock skew, the same constant on gate
 * and hub (not a hub's configured maxSkewMs, which a gate cannot know).
 */
const ENTRY_CLOCK_SKEW_MS = DEFAULT_MAX_SKEW_MS;

/** Date's range (ECMA-262 TimeClip, ±8.64e15 ms): Intl cannot place a time beyond it. */
const MAX_DATE_MS = 8.64e15;
/** Formatters by zone (one costs ~0.1 ms to build, a lookup ~2 µs); a table names one zone. */
const zoneFormats = new Map<string, Intl.DateTimeFormat>();
const MAX_CACHED_ZONES = 16;

function offsetMinuteOfDay(timeMs: number, utcOffsetMinutes: number): number {
  const minutes = Math.floor(timeMs / 60_000) + utcOffsetMinutes;
  return ((minutes % MINUTES_PER_DAY) + MINUTES_PER_DAY) % MINUTES_PER_DAY;
}

function zoneFormat(timeZone: string): Intl.DateTimeFormat {
  let format = zoneFormats.get(timeZone);
  if (!format) {
    if (zoneFormats.size >= MAX_CACHED_ZONES) zoneFormats.clear();
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', hour: 'numeric', minute: 'numeric' });
    zoneFormats.set(timeZone, format);
  }
  return format;
}

/** The wall clock's minute of the day in an IANA zone, daylight saving time included (Intl, tzdata). */
function zoneMinuteOfDay(timeMs: number, timeZone: string): number {
  let hour = 0;
  let minute = 0;
  for (const part of zoneFormat(timeZone).formatToParts(timeMs)) {
    if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return (hour % 24) * 60 + minute;
}

/**
 * The table's local minute of the day: by its time zone when it names one, else by its fixed
 * offset. A time past Date's range (a wire TimeMs may be) counts as UTC, alike on gate and hub.
 */
function localMinuteOfDay(table: FareTable, timeMs: number): number {
  if (table.timeZone !== undefined && Math.abs(timeMs) <= MAX_DATE_MS) return zoneMinuteOfDay(timeMs, table.timeZone);
  return offsetMinuteOfDay(timeMs, table.utcOffsetMinutes ?? 0);
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
  const minute = localMinuteOfDay(table, exitTimeMs);
  const band = table.timeBands.find((b) => inTimeBand(minute, b));
  return band ? band.percent : 100;
}

export function computeFare(table: FareTable, entry: FareEntry | null, exitStation: string, exitTimeMs: number): FareQuote {
  const max = { fareMinor: table.maxFareMinor, currency: table.currency };
  if (!entry) return { ...max, reason: 'missing_entry' };
  const from = table.stations[entry.station];
  const to = table.stations[exitStation];
  if (from === undefined || to === undefined) return { ...max, reason: 'unknown_station' };
  // An entry further in the future than clocks disagree, or too old, is treated as stale; one
  // within the skew started no later than the exit.
  const tripMs = exitTimeMs - entry.time;
  if (tripMs < -ENTRY_CLOCK_SKEW_MS || tripMs > table.maxTripMs) return { ...max, reason: 'stale_entry' };
  const zones = Math.abs(to - from);
  const base = table.baseFareMinor + zones * table.perZoneMinor;
  // Integer math only: round half up on the percent.
  const fare = Math.floor((base * bandPercent(table, exitTimeMs) + 50) / 100);
  return { fareMinor: Math.min(fare, table.maxFareMinor), currency: table.currency, reason: 'normal' };
}
