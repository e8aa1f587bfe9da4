// Unsigned passages (pure): an exit gate opened on its local decision and the wallet never signed
// the fare (card pulled away, declined, signed with another key), or the hub refused what this
// terminal accepted locally (a replayed entry record, say). Nothing can be settled, so the
// fare is this terminal's loss: it counts as local exposure toward the wallet's offline credit and
// the terminal's period budget, and the wallet gets no further local decision here while one is
// on file (it pays with the hub's approval first). The runtime keeps the list in its durable store.
import { z } from 'zod';

/** The terminal store's kv key for the list. */
export const UNSIGNED_PASSAGES_KEY = 'unsigned-passages';
/** Oldest entries are dropped beyond this many (a bound on what a tap reads). */
export const MAX_UNSIGNED_PASSAGES = 1000;
/** How long, in the terminal's running time, an unsigned passage is kept and counted. */
export const UNSIGNED_RETAIN_MS = 30 * 24 * 3600_000;

const UnsignedPassage = z.object({
  requestId: z.string(),
  wallet: z.string(),
  amountMinor: z.number().int().min(0),
  /** Wall clock (for the operator). */
  timeMs: z.number(),
  /** The terminal's running time (TerminalStore.uptimeMs): the period and the retention use it. */
  uptimeMs: z.number(),
  /** Refused by the hub: its outbox row already counts toward the terminal's period budget. */
  inOutbox: z.boolean().optional(),
});
export type UnsignedPassage = z.infer<typeof UnsignedPassage>;

export function parseUnsignedPassages(raw: string | undefined): UnsignedPassage[] {
  if (raw === undefined) return [];
  try {
    const r = z.array(UnsignedPassage).safeParse(JSON.parse(raw));
    return r.success ? r.data : [];
  } catch {
    return [];
  }
}

/** The list with `p` added (once per request id), expired entries dropped, bounded. */
export function addUnsignedPassage(list: readonly UnsignedPassage[], p: UnsignedPassage): UnsignedPassage[] {
  const kept = list.filter((x) => x.requestId !== p.requestId && p.uptimeMs - x.uptimeMs <= UNSIGNED_RETAIN_MS);
  return [...kept, p].slice(-MAX_UNSIGNED_PASSAGES);
}

function live(list: readonly UnsignedPassage[], uptimeNowMs: number): UnsignedPassage[] {
  return list.filter((x) => uptimeNowMs - x.uptimeMs <= UNSIGNED_RETAIN_MS);
}

/** Unpaid fares of this wallet let through here (counted whatever their date: the hub records the report, charges nothing). */
export function unsignedWalletMinor(list: readonly UnsignedPassage[], wallet: string, uptimeNowMs: number): number {
  return live(list, uptimeNowMs).reduce((s, x) => (x.wallet === wallet ? s + x.amountMinor : s), 0);
}

/** Unpaid fares let through in the current period of running time. */
export function unsignedPeriodMinor(list: readonly UnsignedPassage[], uptimeNowMs: number, periodMs: number): number {
  return list.reduce((s, x) => (x.uptimeMs > uptimeNowMs - periodMs && !x.inOutbox ? s + x.amountMinor : s), 0);
}

export function hasUnsignedPassage(list: readonly UnsignedPassage[], wallet: string, uptimeNowMs: number): boolean {
  return live(list, uptimeNowMs).some((x) => x.wallet === wallet);
}
