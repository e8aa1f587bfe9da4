import { platform } from 'node:os';
import { describe, expect, it } from 'vitest';
import { mainThreadCpuMs } from '../../bench/thread-cpu.ts';

describe.runIf(platform() === 'linux')('mainThreadCpuMs', () => {
  it('grows by about the CPU this thread burns, and not by a worker thread’s', async () => {
    const { Worker } = await import('node:worker_threads');
    const before = mainThreadCpuMs() as number;
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    spin(300);
    const afterSpin = mainThreadCpuMs() as number;
    // A worker spinning 300 ms while this thread sleeps in the event loop.
    const worker = new Worker('const e = performance.now() + 300; while (performance.now() < e);', { eval: true });
    await new Promise((r) => worker.once('exit', r));
    const afterWorker = mainThreadCpuMs() as number;
    expect(afterSpin - before).toBeGreaterThanOrEqual(200);
    expect(afterSpin - before).toBeLessThanOrEqual(1000);
    expect(afterWorker - afterSpin).toBeLessThan(150);
  });
});
