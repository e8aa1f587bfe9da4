import { platform } from 'node:os';
import { describe, expect, it } from 'vitest';
import { mainThreadCpuMs, mainThreadReadCalls } from '../../bench/thread-cpu.ts';

describe.runIf(platform() === 'linux')('mainThreadCpuMs', () => {
  it('grows by about the CPU this thread burns, and not by a worker thread’s', async () => {
    const { Worker } = await import('node:worker_threads');
    // Judged against the whole process's CPU over the same span: on a busy machine this thread
    // may get far less than the wall time it spins.
    const processCpuMs = (since?: NodeJS.CpuUsage) => {
      const u = process.cpuUsage(since);
      return (u.user + u.system) / 1000;
    };
    const p0 = process.cpuUsage();
    const before = mainThreadCpuMs() as number;
    const end = performance.now() + 300;
    while (performance.now() < end);
    const afterSpin = mainThreadCpuMs() as number;
    const spinProcess = processCpuMs(p0);
    // A worker spinning 300 ms while this thread sleeps in the event loop.
    const p1 = process.cpuUsage();
    const worker = new Worker('const e = performance.now() + 300; while (performance.now() < e);', { eval: true });
    await new Promise((r) => worker.once('exit', r));
    const afterWorker = mainThreadCpuMs() as number;
    const workerProcess = processCpuMs(p1);
    expect(spinProcess).toBeGreaterThan(30);
    expect(afterSpin - before).toBeGreaterThanOrEqual(0.7 * spinProcess);
    expect(afterSpin - before).toBeLessThanOrEqual(spinProcess + 20);
    expect(workerProcess).toBeGreaterThan(30);
    expect(afterWorker - afterSpin).toBeLessThan(0.4 * workerProcess);
  });

  it('counts this thread\'s read calls', async () => {
    const { openSync, readSync, closeSync } = await import('node:fs');
    const fd = openSync('/proc/self/stat', 'r');
    const buf = Buffer.alloc(64);
    const before = mainThreadReadCalls() as number;
    for (let i = 0; i < 50; i++) readSync(fd, buf, 0, 64, 0);
    const after = mainThreadReadCalls() as number;
    closeSync(fd);
    // 50 preads, plus the one that read the counter itself.
    expect(after - before).toBeGreaterThanOrEqual(50);
    expect(after - before).toBeLessThan(60);
  });
});
