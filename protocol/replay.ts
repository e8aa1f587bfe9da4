/** Replay protection primitives (PRODUCT.md §12): fresh nonces, bounded clock skew, counters. */
import { randomId } from './crypto.ts';
import { toHex } from './hex.ts';

/** 128 random bits, lowercase hex: a terminal challenge. */
export function newChallenge(): string {
  return toHex(randomId(16));
}

/**
 * 128 bits, lowercase hex: made by the sender, persisted, reused on every retry. The first 48
 * bits are the Unix time in ms and the other 80 random (UUIDv7's layout, RFC 9562 §5.7, without
 * its version bits), so ids made close in time sort close: the hub's request-id indexes then
 * grow at their right edge, and a commit writes a page or two of each instead of one random leaf
 * per request. The hub relies on their being unique and unguessable (ids are global: a terminal
 * that learned another's id first could take it), not on their order; 80 random bits per
 * millisecond keep them so, and the time they show is the request's `time` anyway.
 */
export function newRequestId(nowMs: number = Date.now()): string {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new RangeError(`newRequestId: time must be a non-negative integer of ms (${nowMs})`);
  return (nowMs % 2 ** 48).toString(16).padStart(12, '0') + toHex(randomId(10));
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
  /** Bit i set: counter `highest - i` was seen (i < windowSize). Fixed size, unlike a set of counters. */
  private mask: bigint;
  private readonly full: bigint;
  constructor(
    readonly windowSize = 1024,
    /** `state()` of an earlier window; `seen` is the older list form, still read. */
    initial?: { highest: number; mask?: string; seen?: readonly number[] },
  ) {
    if (!Number.isSafeInteger(windowSize) || windowSize < 1) throw new TypeError(`CounterWindow: windowSize must be a positive integer (${windowSize})`);
    this.full = (1n << BigInt(windowSize)) - 1n;
    this.highest = initial?.highest ?? -1;
    this.mask = initial?.mask !== undefined ? BigInt(`0x${initial.mask}`) & this.full : 0n;
    for (const c of initial?.seen ?? []) {
      const i = this.highest - c;
      if (i >= 0 && i < windowSize) this.mask |= 1n << BigInt(i);
    }
  }

  /** Returns true and records the counter when it is new; false for a replay or a counter too old. */
  accept(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 0) return false;
    if (counter > this.highest) {
      const shift = counter - this.highest;
      this.mask = shift >= this.windowSize ? 1n : ((this.mask << BigInt(shift)) | 1n) & this.full;
      this.highest = counter;
      return true;
    }
    const i = this.highest - counter;
    if (i >= this.windowSize) return false;
    const bit = 1n << BigInt(i);
    if ((this.mask & bit) !== 0n) return false;
    this.mask |= bit;
    return true;
  }

  /** At most windowSize / 4 hex digits, whatever the wallet's history: persisted on every claim. */
  state(): { highest: number; mask: string } {
    return { highest: this.highest, mask: this.mask.toString(16) };
  }
}

/**
 * Remembers nonces until they expire. Bounded: when full of live nonces it refuses new ones
 * ('full') rather than forget one, which would let a captured nonce be replayed.
 */
export class NonceCache {
  private readonly entries = new Map<string, number>();
  constructor(
    readonly ttlMs: number,
    readonly maxEntries = 100_000,
  ) {}

  /** 'fresh' (now remembered through nowMs + ttlMs inclusive), 'replay' (seen within that), or 'full'. */
  claim(nonce: string, nowMs: number): 'fresh' | 'replay' | 'full' {
    const expiry = this.entries.get(nonce);
    if (expiry !== undefined && expiry >= nowMs) return 'replay';
    if (expiry === undefined && this.entries.size >= this.maxEntries) {
      for (const [k, exp] of this.entries) if (exp < nowMs) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries) return 'full';
    }
    this.entries.set(nonce, nowMs + this.ttlMs);
    return 'fresh';
  }
}
