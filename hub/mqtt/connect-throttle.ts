/**
 * Refused CONNECTs per source address (issue 4): every refusal spends one token of the address's
 * bucket; an address whose bucket is empty is refused (`THROTTLED`) before anything is looked up
 * or any signature checked. Without it, anyone who can reach the port and knows a terminal id
 * makes the hub verify a signature, and write a warn line, per CONNECT they send. An accepted
 * CONNECT costs nothing, so a fleet behind one NAT reconnecting at once after a hub restart is not
 * throttled, unless more than a burst of them is refused (tokens dated before the restart); a
 * terminal that keeps failing (a revoked key, a clock far off) is slowed to the refill rate.
 * IPv6 sources are counted per /64, the block one host usually gets; IPv4-mapped ones as IPv4.
 */
import ipaddr from 'ipaddr.js';

export interface ConnectThrottleOptions {
  /** Refusals an address may run up at once (default 50). */
  readonly burst?: number;
  /** Refusals per second an address gets back (default 5). */
  readonly refillPerS?: number;
  /** Addresses remembered; beyond it the fully refilled are dropped, then the oldest (default 10,000). */
  readonly maxSources?: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
  /** Ran out, and has not refilled whole since: one episode, told once. */
  throttled: boolean;
}

export class ConnectThrottle {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly refillPerMs: number;
  private readonly maxSources: number;

  constructor(options: ConnectThrottleOptions = {}) {
    this.burst = options.burst ?? 50;
    this.refillPerMs = (options.refillPerS ?? 5) / 1000;
    this.maxSources = options.maxSources ?? 10_000;
  }

  /** False while the source has no refusals left: refuse it without looking further. */
  allows(address: string | undefined, nowMs: number): boolean {
    const bucket = this.buckets.get(sourceKey(address));
    return !bucket || this.refill(bucket, nowMs) >= 1;
  }

  /**
   * Counts a refusal; true when it spent the source's last token and the source was not already
   * throttled since it last refilled whole (one log line per episode of a sustained flood).
   */
  refused(address: string | undefined, nowMs: number): boolean {
    const key = sourceKey(address);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxSources) this.makeRoom(nowMs);
      this.buckets.set(key, (bucket = { tokens: this.burst, atMs: nowMs, throttled: false }));
    }
    bucket.tokens = Math.max(0, this.refill(bucket, nowMs) - 1);
    if (bucket.tokens >= 1 || bucket.throttled) return false;
    bucket.throttled = true;
    return true;
  }

  get sources(): number {
    return this.buckets.size;
  }

  private refill(bucket: Bucket, nowMs: number): number {
    bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, nowMs - bucket.atMs) * this.refillPerMs);
    bucket.atMs = nowMs;
    if (bucket.tokens >= this.burst) bucket.throttled = false;
    return bucket.tokens;
  }

  private makeRoom(nowMs: number): void {
    for (const [key, bucket] of this.buckets) if (this.refill(bucket, nowMs) >= this.burst) this.buckets.delete(key);
    // Still full of active sources (a spread of addresses): forget the oldest, which costs at most
    // that source a fresh burst.
    if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/** The address a refusal is counted against: IPv4 as is, IPv6 by its /64. */
export function sourceKey(address: string | undefined): string {
  if (address === undefined || !ipaddr.isValid(address)) return 'unknown';
  const parsed = ipaddr.process(address); // IPv4-mapped IPv6 → IPv4
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}
