import type { PhaseResult } from '../simulators/load/load-plan.ts';

/** The bar on the peak's p99 (issue 4). */
export const PEAK_P99_BAR_MS = 30;
export const MIN_PEAK_WINDOW = 8;

/** One closed-loop phase: its window (requests in flight), the generator's result and the hub's CPU per settled request. */
export interface Measured {
  readonly window: number;
  readonly result: PhaseResult;
  readonly cpuUsPerSettled: number;
}

/**
 * The peak: the most settled/s of a closed loop over all 200 terminals whose p99 is within the
 * bar (TPC-C's rule: a throughput counts only with its response times met). The terminals take
 * turns, each with at most one request out; the window (requests in flight at once) is bisected
 * on a log scale between MIN_PEAK_WINDOW and the saturated window, `steps` phases. The
 * saturated loop alone cannot meet the bar: by Little's law 200 in flight take a mean round trip
 * of 30 ms at 6,667 settled/s, and a p99 of 30 ms needs far more. If no window met it, the
 * smallest is measured (one phase more) and returned as it is: its p99 shows the miss.
 */
export async function searchPeak(saturated: Measured, closedLoop: (window: number) => Promise<Measured>, steps: number): Promise<Measured> {
  const meets = (m: Measured) => m.result.rttP99Ms <= PEAK_P99_BAR_MS;
  if (meets(saturated) || saturated.window <= MIN_PEAK_WINDOW) return saturated;
  let best: Measured | undefined;
  let lo = MIN_PEAK_WINDOW;
  let hi = saturated.window;
  for (let step = 0; step < steps; step++) {
    const window = Math.round(Math.sqrt(lo * hi));
    if (window <= lo || window >= hi) break;
    const m = await closedLoop(window);
    if (meets(m)) {
      lo = window;
      if (best === undefined || m.result.settledPerS > best.result.settledPerS) best = m;
    } else {
      hi = window;
    }
  }
  return best ?? (await closedLoop(MIN_PEAK_WINDOW));
}
