/** Replay protection primitives (PRODUCT.md §12): fresh nonces, bounded clock skew, counters. */
import { randomId } from './crypto.ts';
import { toHex } from './hex.ts';

/** 128 random bits, lowercase hex: a terminal challenge. */
export function newChallenge(): string {
  return toHex(randomId(16));
}

/** 128 random bits, lowercase hex: made by the sender, persisted, reused on every retry. */
export function newRequestId(): string {
  return toHex(randomId(16));
}

export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;

export function withinSkew(timeMs: number, nowMs: number, maxSkewMs = DEFAULT_MAX_SKEW_MS): boolean {
  return Math.abs(nowMs - timeMs) <= maxSkewMs;
}

/**
 * Sliding-window counter check (as IPsec's anti-replay window): accepts each counter once, in any
 * order within `windowSize` of the highest seen, so offline authorizations uploaded out of order
 * still pass while a replayed one does not. Pure state; persist `state()` to keep it across restarts.
 */
export class CounterWindow {
  private highest: number;
  private seen: Set<number>;
  constructor(
    readonly windowSize = 1024,
    initial?: { highest: number; seen: number[] },
  ) {
    this.highest = initial?.highest ?? -1;
    this.seen = new Set(initial?.seen ?? []);
  }

  /** Returns true and records the counter when it is new; false for a replay or a counter too old. */
  accept(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (counter <= this.highest - this.windowSize) return false;
    if (this.seen.has(counter)) return false;
    this.seen.add(counter);
    if (counter > this.highest) {
      this.highest = counter;
      const floor = this.highest - this.windowSize;
      if (this.seen.size > this.windowSize) for (const c of this.seen) if (c <= floor) this.seen.delete(c);
    }
    return true;
  }

  state(): { highest: number; seen: number[] } {
    return { highest: this.highest, seen: [...this.seen] };
  }
}

/** Remembers nonces until they expire; bounded so a flood cannot grow it without limit. */
export class NonceCache {
  private readonly entries = new Map<string, number>();
  constructor(
    readonly ttlMs: number,
    readonly maxEntries = 100_000,
  ) {}

  /** True if the nonce is fresh (and now remembered); false if seen within the TTL. */
  claim(nonce: string, nowMs: number): boolean {
    const expiry = this.entries.get(nonce);
    if (expiry !== undefined && expiry > nowMs) return false;
    if (this.entries.size >= this.maxEntries) this.evict(nowMs);
    this.entries.set(nonce, nowMs + this.ttlMs);
    return true;
  }

  private evict(nowMs: number): void {
    for (const [k, exp] of this.entries) if (exp <= nowMs) this.entries.delete(k);
    // Still full: drop the oldest insertions (Map keeps insertion order).
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}
