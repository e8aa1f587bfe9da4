/** Tiny helpers shared by the benchmark groups. Figures are printed as `name: value unit`. */
export type Report = (name: string, value: number, unit: string) => void;

/** Runs `fn` repeatedly for about `durationMs` and returns operations per second. */
export function opsPerSecond(fn: () => void, durationMs = 1000): number {
  for (let i = 0; i < 200; i++) fn(); // warm-up: JIT and caches
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < durationMs) {
    for (let i = 0; i < 50; i++) fn();
    ops += 50;
    now = performance.now();
  }
  return Math.round((ops * 1000) / (now - start));
}

export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return NaN;
  const idx = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[idx]!;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
