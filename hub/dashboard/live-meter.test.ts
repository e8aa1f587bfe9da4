import { describe, expect, it } from 'vitest';
import { LiveMeter, percentile } from './live-meter.ts';

describe('LiveMeter', () => {
  it('reports rates and nearest-rank percentiles over the window', () => {
    const m = new LiveMeter({ windowMs: 10_000 });
    for (let i = 1; i <= 100; i++) m.record(1_000 + i * 10, i, i % 10 === 0 ? 'declined' : 'approved', i % 20 === 0 ? 'RESTRICTED' : 'INSUFFICIENT_FUNDS');
    const s = m.snapshot(5_000);
    expect(s.totalSettled).toBe(90);
    expect(s.totalDeclined).toBe(10);
    expect(s.settledPerS).toBe(9);
    expect(s.declinedPerS).toBe(1);
    expect(s.latencyMsP50).toBe(50);
    expect(s.latencyMsP99).toBe(99);
    expect(s.declinedByCode).toEqual({ INSUFFICIENT_FUNDS: 5, RESTRICTED: 5 });
  });

  it('forgets samples older than the window but keeps the totals', () => {
    const m = new LiveMeter({ windowMs: 1_000 });
    m.record(0, 5, 'approved');
    m.record(500, 7, 'approved');
    expect(m.snapshot(1_200).settledPerS).toBe(1);
    const later = m.snapshot(10_000);
    expect(later.settledPerS).toBe(0);
    expect(later.latencyMsP50).toBeNull();
    expect(later.totalSettled).toBe(2);
  });

  it('stays bounded and divides by the span a full ring covers', () => {
    const m = new LiveMeter({ windowMs: 10_000, maxSamples: 100 });
    for (let i = 0; i < 1_000; i++) m.record(i, 1, 'approved'); // 1000/s for 1 s
    const s = m.snapshot(1_000);
    expect(s.totalSettled).toBe(1_000);
    expect(s.settledPerS).toBeGreaterThan(900);
    expect(s.settledPerS).toBeLessThan(1_100);
  });

  it('keeps the newest results first, up to the limit', () => {
    const m = new LiveMeter({ recentLimit: 3 });
    for (let i = 0; i < 5; i++) m.remember({ requestId: `r${i}`, kind: 'purchase', status: 'approved', amountMinor: i, currency: 'EUR', atMs: i });
    expect(m.recent().map((r) => r.requestId)).toEqual(['r4', 'r3', 'r2']);
  });

  it('rejects a bad window', () => {
    expect(() => new LiveMeter({ windowMs: 0 })).toThrow(/windowMs/);
    expect(percentile([], 50)).toBeNaN();
  });
});
