import { describe, expect, it } from 'vitest';
import { MIN_PEAK_WINDOW, PEAK_P99_BAR_MS, searchPeak, type Measured } from '../../bench/peak-search.ts';
import type { PhaseResult } from '../../simulators/load/load-plan.ts';

/** A hub modelled by Little's law: throughput rises with the window up to `capacity`, p99 = 3 × window / throughput. */
function modelHub(capacity: number, halfAt: number) {
  const tried: number[] = [];
  const measure = (window: number): Measured => {
    const settledPerS = Math.round((capacity * window) / (window + halfAt));
    const meanMs = (window / settledPerS) * 1000;
    const result = { name: `w${window}`, settledPerS, rttP50Ms: meanMs, rttP99Ms: 3 * meanMs } as PhaseResult;
    return { window, result, cpuUsPerSettled: 300 };
  };
  const closedLoop = (window: number) => {
    tried.push(window);
    return Promise.resolve(measure(window));
  };
  return { tried, measure, closedLoop };
}

describe('searchPeak', () => {
  it('reports the passing window with the most settled/s, its throughput and p99 from that one phase', async () => {
    const hub = modelHub(7000, 5);
    const peak = await searchPeak(hub.measure(200), hub.closedLoop, 4);
    // Model: window w gives p99 = 3 × (w + 5) / 7000 s, ≤ 30 ms up to w = 65; 40 and 60 pass.
    expect(hub.tried).toEqual([40, 89, 60, 73]);
    expect(peak.window).toBe(60);
    expect(peak.result.settledPerS).toBe(6462);
    expect(peak.result.rttP99Ms).toBeLessThanOrEqual(PEAK_P99_BAR_MS);
    for (const w of hub.tried) if (w > peak.window) expect(hub.measure(w).result.rttP99Ms).toBeGreaterThan(PEAK_P99_BAR_MS);
  });

  it('takes the saturated phase itself when its p99 already meets the bar', async () => {
    const hub = modelHub(50_000, 10);
    const saturated = hub.measure(200);
    expect(await searchPeak(saturated, hub.closedLoop, 4)).toBe(saturated);
    expect(hub.tried).toEqual([]);
  });

  it('measures the smallest window and reports it as it is when no window meets the bar', async () => {
    const hub = modelHub(200, 10);
    const peak = await searchPeak(hub.measure(200), hub.closedLoop, 4);
    expect(peak.window).toBe(MIN_PEAK_WINDOW);
    expect(peak.result.rttP99Ms).toBeGreaterThan(PEAK_P99_BAR_MS);
    expect(hub.tried.at(-1)).toBe(MIN_PEAK_WINDOW);
  });

  it('searches nothing below the smallest window: a saturated window that small is the peak, met or not', async () => {
    const hub = modelHub(200, 10);
    const saturated = hub.measure(MIN_PEAK_WINDOW);
    expect(await searchPeak(saturated, hub.closedLoop, 4)).toBe(saturated);
    expect(hub.tried).toEqual([]);
  });

  it('measures nothing beyond the saturated phase with no steps, bar the smallest window as the fallback', async () => {
    const hub = modelHub(5000, 10);
    const peak = await searchPeak(hub.measure(200), hub.closedLoop, 0);
    expect(hub.tried).toEqual([MIN_PEAK_WINDOW]);
    expect(peak.window).toBe(MIN_PEAK_WINDOW);
  });
});
