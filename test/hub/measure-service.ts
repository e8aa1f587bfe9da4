/**
 * Throughput of the settlement service alone (no MQTT): signed purchase requests through
 * handleRequest with the inline verifier, real SQLite files, `inFlight` requests at a time.
 * Usage: npx tsx test/hub/measure-service.ts [requests=5000] [wallets=1000] [inFlight=200]
 * VERIFIER=workers: signature checks in hub/verify's worker-thread pool (as the MQTT hub runs).
 * LEDGER_DURABILITY=pipelined: the ledger's pipelined durability mode (default full).
 * LEDGER_WRITER_THREAD=1: the ledger commits on its writer thread (synchronous=FULL still).
 * PROFILE=file.cpuprofile / HEAP_PROFILE=file.heapprofile: CPU profile / allocation sampling
 * (collected objects included) of the measured phase; both slow the run whose rate is printed.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { newRequestId } from '../../protocol/index.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import { SNACKS, enroll, openHubFixture, purchase, readResult, register, type TestWallet } from './kit.ts';

const [requests = 5000, walletCount = 1000, inFlight = 200] = process.argv.slice(2).map(Number);
const fx = await openHubFixture({
  clock: Date.now,
  ledgerDurability: process.env['LEDGER_DURABILITY'] === 'pipelined' ? 'pipelined' : 'full',
  ...(process.env['LEDGER_WRITER_THREAD'] ? { ledgerStore: { writerThread: true } } : {}),
  ...(process.env['VERIFIER'] === 'workers' ? { verifier: new WorkerVerifier({ workers: 2 }) } : {}) });
try {
  const vend = await enroll(fx.hub, 'vend-1', 'vending', 'snacks');
  fx.hub.importCatalog(SNACKS);
  const wallets: TestWallet[] = [];
  for (let i = 0; i < walletCount; i++) {
    const w = await register(fx.hub);
    await fx.hub.topUp({ wallet: w.id, amountMinor: 1_000_000, operatorId: 'bench', requestId: newRequestId() });
    wallets.push(w);
  }
  // Sign everything first: the wallet and terminal work is not the hub's.
  const payloads = Array.from({ length: requests }, (_, i) => purchase(vend, wallets[i % walletCount] as TestWallet, [{ sku: 'cola', qty: 1, unitMinor: 250 }], Date.now()).bytes);
  const latencies: number[] = [];
  const answers: Uint8Array[] = [];
  let next = 0;
  let approved = 0;
  // PROFILE=file.cpuprofile: CPU profile of the measured phase only.
  const session = process.env['PROFILE'] ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  // HEAP_PROFILE=file.heapprofile: where the measured phase allocates, garbage included (GC pressure).
  const heapSession = process.env['HEAP_PROFILE'] ? new Session() : undefined;
  if (heapSession) {
    heapSession.connect();
    await heapSession.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < payloads.length) {
        const p = payloads[next++] as Uint8Array;
        const s = performance.now();
        const answer = await fx.hub.handleRequest(vend.id, p);
        latencies.push(performance.now() - s);
        answers.push(answer);
        // The terminal's verification is not the hub's work: a cheap look here, a full check below.
        if ((JSON.parse(Buffer.from(answer).toString('utf8')) as { body: { status: string } }).body.status === 'approved') approved++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // Heap sampling first: it would otherwise also sample the CPU profile's serialization.
  if (heapSession) {
    const { profile } = await heapSession.post('HeapProfiler.stopSampling');
    writeFileSync(process.env['HEAP_PROFILE'] as string, JSON.stringify(profile));
    heapSession.disconnect();
  }
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env['PROFILE'] as string, JSON.stringify(profile));
    session.disconnect();
  }
  latencies.sort((a, b) => a - b);
  const pct = (q: number) => (latencies[Math.floor(q * (latencies.length - 1))] ?? 0).toFixed(1);
  for (const a of answers.slice(0, 100)) readResult(fx.hub, a);
  const verify = await fx.hub.verifyLedger();
  console.log(
    JSON.stringify({
      'service.settled_per_s': Math.round(approved / seconds),
      approved,
      requests,
      inFlight,
      latencyMsP50: pct(0.5),
      latencyMsP99: pct(0.99),
      cpuUsPerRequest: Math.round((cpu.user + cpu.system) / requests),
      engineLargestBatch: fx.hub.engine.stats.largestBatch,
      verifyOk: verify.ok,
    }),
  );
} finally {
  await fx.cleanup();
}
