// Small-integer encodings of enums for compact rows. Append only: stored values never change.
import type { CommandKind, EntryKind, LogState } from './types.ts';

export const COMMAND_KINDS: readonly CommandKind[] = ['purchase', 'fare', 'offline_purchase', 'refund', 'topup', 'transfer', 'payout'];
export const LOG_STATES: readonly LogState[] = ['logged', 'withdrawn', 'held', 'done', 'declined'];
export const ENTRY_KINDS: readonly EntryKind[] = ['withdraw', 'deposit', 'hold', 'release', 'refund', 'topup', 'payout'];

function encoder<T extends string>(values: readonly T[], what: string): { encode: (v: T) => number; decode: (n: number) => T } {
  const index = new Map<T, number>(values.map((v, i) => [v, i]));
  return {
    encode(v: T): number {
      const n = index.get(v);
      if (n === undefined) throw new TypeError(`${what}: unknown value ${String(v)}`);
      return n;
    },
    decode(n: number): T {
      const v = values[n];
      if (v === undefined) throw new TypeError(`${what}: unknown code ${n}`);
      return v;
    },
  };
}

export const commandKindCode = encoder(COMMAND_KINDS, 'command kind');
export const logStateCode = encoder(LOG_STATES, 'log state');
export const entryKindCode = encoder(ENTRY_KINDS, 'entry kind');
