import { describe, expect, it } from 'vitest';
import { RequestTracer } from '../../bench/request-trace.ts';
import type { RequestTiming } from '../../simulators/load/load-plan.ts';

const payload = (requestId: string) => Buffer.from(JSON.stringify({ v: 1, type: 'settlement.request', body: { requestId } }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clock = () => performance.timeOrigin + performance.now();

describe('RequestTracer (BENCH_MQTT_TRACE)', () => {
  it('splits the slowest requests into send lag, time to the service, service time and reply', async () => {
    const tracer = new RequestTracer();
    const service = tracer.service({ handleRequest: async (_t, p) => (await sleep(Buffer.from(p).includes('slow') ? 40 : 1), new Uint8Array([1])) });
    const timings: RequestTiming[] = [];
    for (const id of ['fast1', 'fast2', 'slow']) {
      const due = clock();
      const sent = due + 2;
      await sleep(5);
      const reply = await service.handleRequest('pos-1', payload(id));
      expect([...reply]).toEqual([1]);
      timings.push([id, due, sent, clock()]);
    }
    const line = tracer.describe(timings);
    // The slowest 1 % of three requests is the slow one alone.
    const m = /slowest 1 % \((\d+) in 1 bursts, 0 of them across a hub GC pause, rtt ([\d.]+) ms\) = send lag ([\d.]+) \+ to the service ([\d.]+) \+ in the service ([\d.]+) \+ reply ([\d.]+)/.exec(line);
    expect(m, line).not.toBeNull();
    const [count, rtt, lag, toService, inService, reply] = m!.slice(1).map(Number);
    expect(count).toBe(1);
    expect(lag).toBeCloseTo(2, 0);
    expect(toService).toBeGreaterThanOrEqual(1); // a 5 ms timer, which may fire up to ~1 ms early
    expect(inService).toBeGreaterThanOrEqual(35);
    expect(reply).toBeLessThan(20);
    expect(Math.abs(lag! + toService! + inService! + reply! - rtt!)).toBeLessThanOrEqual(0.3);
  });

  it('counts the slowest requests\' bursts: those due within 20 ms of each other are one stall', async () => {
    const tracer = new RequestTracer();
    const service = tracer.service({ handleRequest: async () => new Uint8Array() });
    const ids = Array.from({ length: 200 }, (_, i) => `r${i}`);
    for (const id of ids) await service.handleRequest('pos-1', payload(id));
    // 200 requests due 10 ms apart, 1 ms each, but for two slow ones (the slowest 1 %).
    const timings = (slow: readonly number[]): RequestTiming[] => ids.map((id, i) => [id, i * 10, i * 10, i * 10 + (slow.includes(i) ? 50 : 1)]);
    expect(tracer.describe(timings([40, 41]))).toMatch(/slowest 1 % \(2 in 1 bursts, 0 of them across a hub GC pause, rtt 50\.0 ms\)/);
    expect(tracer.describe(timings([40, 90]))).toMatch(/slowest 1 % \(2 in 2 bursts, 0 of them across a hub GC pause, rtt 50\.0 ms\)/);
  });

  it('chains a burst from each slow request to the next (a stall longer than 20 ms is one burst), names the GC pauses it spans and, verbose, prints each', async () => {
    const tracer = new RequestTracer(true);
    const service = tracer.service({ handleRequest: async () => new Uint8Array() });
    const ids = Array.from({ length: 400 }, (_, i) => `r${i}`);
    for (const id of ids) await service.handleRequest('pos-1', payload(id));
    const slow = [40, 41, 42, 43];
    const timings: RequestTiming[] = ids.map((id, i) => [id, i * 10, i * 10, i * 10 + (slow.includes(i) ? 50 : 1)]);
    // Due 400 to 430 ms, each within 20 ms of the one before: one burst, from 400 to 480 ms.
    const during = tracer.describe(timings, [[1000, 1004], [470, 475]]);
    expect(during).toMatch(/slowest 1 % \(4 in 1 bursts, 1 of them across a hub GC pause, rtt 50\.0 ms\)/);
    expect(during).toMatch(/\n#\s+burst at \+0\.40 s: 4 requests, rtt max 50\.0 = .*; GC 5\.0 ms/);
    expect(tracer.describe(timings, [[1000, 1004]])).toMatch(/4 in 1 bursts, 0 of them across a hub GC pause/);
  });

  it('times verifier calls and passes their verdicts through; reset forgets everything', async () => {
    const tracer = new RequestTracer();
    const verifier = tracer.verifier({ verifyMany: async (items) => (await sleep(10), items.map(() => true)), close: async () => {} });
    await expect(verifier.verifyMany([{ signature: new Uint8Array(64), message: new Uint8Array(1), publicKey: new Uint8Array(32) }])).resolves.toEqual([true]);
    const commit = tracer.timeCalls('commit', async (n: number) => n * 2);
    await expect(commit(21)).resolves.toBe(42);
    const service = tracer.service({ handleRequest: async () => new Uint8Array() });
    await service.handleRequest('pos-1', payload('a'));
    const line = tracer.describe([['a', 0, 0, 1]]);
    expect(line).toMatch(/verify [\d.]+\/[\d.]+\/[\d.]+, commit [\d.]+\/[\d.]+\/[\d.]+/);
    expect(Number(/verify ([\d.]+)/.exec(line)![1])).toBeGreaterThanOrEqual(8);
    tracer.reset();
    expect(tracer.describe([['a', 0, 0, 1]])).toBe('trace: no requests matched');
  });
});
