/**
 * Live throughput and latency over a sliding window (settlements/s, p50/p99), fed by the hub's
 * request path. Pure: every call takes `nowMs`. Bounded: at most `maxSamples` samples are kept,
 * so a burst cannot grow memory without limit (the rates then cover a shorter span, which
 * `snapshot` accounts for).
 */
import type { DashboardSettlement, DashboardThroughput } from './types.ts';

export interface LiveMeterOptions {
  readonly windowMs?: number;
  readonly maxSamples?: number;
  /** Recent results kept for the "recent settlements" table. */
  readonly recentLimit?: number;
}

export class LiveMeter {
  readonly windowMs: number;
  private readonly maxSamples: number;
  private readonly recentLimit: number;
  // Parallel ring buffers: time, latency, approved?
  private readonly atMs: Float64Array;
  private readonly latencyMs: Float64Array;
  private readonly approved: Uint8Array;
  private head = 0;
  private size = 0;
  private totalSettled = 0;
  private totalDeclined = 0;
  private readonly byCode = new Map<string, number>();
  private readonly recentRing: DashboardSettlement[] = [];

  constructor(options: LiveMeterOptions = {}) {
    this.windowMs = options.windowMs ?? 10_000;
    this.maxSamples = options.maxSamples ?? 200_000;
    this.recentLimit = options.recentLimit ?? 50;
    if (!(this.windowMs > 0)) throw new Error(`windowMs must be > 0, got ${this.windowMs}`);
    if (!(this.maxSamples > 0)) throw new Error(`maxSamples must be > 0, got ${this.maxSamples}`);
    this.atMs = new Float64Array(this.maxSamples);
    this.latencyMs = new Float64Array(this.maxSamples);
    this.approved = new Uint8Array(this.maxSamples);
  }

  /** One answered request: `latencyMs` from receipt of the request to the signed reply. */
  record(nowMs: number, latencyMs: number, status: 'approved' | 'declined', code?: string | null): void {
    const i = (this.head + this.size) % this.maxSamples;
    this.atMs[i] = nowMs;
    this.latencyMs[i] = latencyMs;
    this.approved[i] = status === 'approved' ? 1 : 0;
    if (this.size < this.maxSamples) this.size++;
    else this.head = (this.head + 1) % this.maxSamples;
    if (status === 'approved') this.totalSettled++;
    else {
      this.totalDeclined++;
      const key = code ?? 'UNKNOWN';
      this.byCode.set(key, (this.byCode.get(key) ?? 0) + 1);
    }
  }

  /** Keeps a row for the recent-settlements table (newest first). */
  remember(row: DashboardSettlement): void {
    this.recentRing.unshift(row);
    if (this.recentRing.length > this.recentLimit) this.recentRing.length = this.recentLimit;
  }

  recent(): readonly DashboardSettlement[] {
    return this.recentRing;
  }

  snapshot(nowMs: number): DashboardThroughput {
    const fromMs = nowMs - this.windowMs;
    // Drop samples older than the window.
    while (this.size > 0 && this.atMs[this.head]! < fromMs) {
      this.head = (this.head + 1) % this.maxSamples;
      this.size--;
    }
    const latencies: number[] = [];
    let settled = 0;
    let declined = 0;
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) % this.maxSamples;
      latencies.push(this.latencyMs[i]!);
      if (this.approved[i] === 1) settled++;
      else declined++;
    }
    latencies.sort((a, b) => a - b);
    // A full ring covers less than the window: divide by the span it really covers.
    const spanMs = this.size === this.maxSamples ? Math.max(1, nowMs - this.atMs[this.head]!) : this.windowMs;
    return {
      windowMs: this.windowMs,
      settledPerS: round((settled * 1000) / spanMs, 1),
      declinedPerS: round((declined * 1000) / spanMs, 1),
      latencyMsP50: latencies.length > 0 ? round(percentile(latencies, 50), 2) : null,
      latencyMsP99: latencies.length > 0 ? round(percentile(latencies, 99), 2) : null,
      totalSettled: this.totalSettled,
      totalDeclined: this.totalDeclined,
      declinedByCode: Object.fromEntries([...this.byCode.entries()].sort((a, b) => b[1] - a[1])),
    };
  }
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return NaN;
  const idx = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[idx]!;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
