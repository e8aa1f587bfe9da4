/**
 * Fare tables (seed 004 claim 11), versioned: the hub settles a gate exit with the table that was
 * in force at the exit time, so an offline gate's upload after a table change still agrees with
 * the gate's own computation. The fare itself is protocol's computeFare (shared with gates).
 */
import { computeFare, FareTableSchema, type FareQuote, type FareTable } from '../../protocol/index.ts';
import { parseWith, type ParseResult } from './catalog.ts';

export interface FareTableVersion {
  readonly version: number;
  readonly table: FareTable;
  /** In force from this time on (until the next version). */
  readonly timeMs: number;
}

export function parseFareTableFile(raw: unknown): ParseResult<FareTable> {
  const r = parseWith(FareTableSchema, raw);
  if (!r.ok) return r;
  // The wire accepts it (every fare is then the cap), but in a file it is a typo.
  if (r.value.maxFareMinor < r.value.baseFareMinor) return { ok: false, field: 'maxFareMinor', message: `below baseFareMinor (${r.value.baseFareMinor})` };
  // The wire accepts it (a band that matches no minute), but it says neither "all day" nor "never".
  const empty = r.value.timeBands.findIndex((b) => b.fromMinute === b.toMinute);
  if (empty >= 0) return { ok: false, field: `timeBands.${empty}.toMinute`, message: 'equals fromMinute: an empty band (fromMinute > toMinute spans midnight)' };
  return r;
}

/** The newest version in force at timeMs; versions sorted by version ascending. */
export function fareTableAt(versions: readonly FareTableVersion[], timeMs: number): FareTableVersion | undefined {
  let found: FareTableVersion | undefined;
  for (const v of versions) if (v.timeMs <= timeMs) found = v;
  // An exit older than every table (clock trouble): the oldest table is the only sensible one.
  return found ?? versions[0];
}

export function quoteFare(table: FareTable, entry: { station: string; time: number } | null, exitStation: string, exitTimeMs: number): FareQuote {
  return computeFare(table, entry, exitStation, exitTimeMs);
}
