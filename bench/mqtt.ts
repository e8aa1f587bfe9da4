/**
 * Benchmark group `mqtt` (issue 4): signed purchase request → hub-signed result through the REAL
 * hub (createHub: registry, rules, SQLite ledger with synchronous=FULL, worker-thread signature
 * verification) behind the embedded aedes broker, then behind a real Mosquitto. The load comes
 * from simulators/load/load-generator.ts in its OWN process: 200 enrolled terminals, funded wallets.
 *   mqtt.rtt_p50_ms_at_100rps / p99, mqtt.rtt_p50_ms_at_1000rps / p99   open loop
 *   mqtt.saturated.settled_per_s / .rtt_p99_ms / .hub_cpu_us_per_settled   closed loop, 200
 *     terminals saturating (200 requests in flight, one per terminal): capacity, and ITS p99
 *   mqtt.settled_per_s_peak, mqtt.rtt_p99_ms_at_peak (and p50, peak_window, hub CPU)   closed
 *     loop, all 200 terminals taking turns (each ≤ 1 outstanding): the most settled/s of the
 *     windows tried whose p99 ≤ 30 ms, throughput and p99 of ONE phase (searchPeak). Little's
 *     law: 200 in flight at a 30 ms MEAN already need 6,667 settled/s.
 *   the same with the prefix mqtt.mosquitto.
 * Diagnostic, prefix mqtt.floor.: the machine's floor for the latency bars, a bare QoS 1 echo with
 * nothing of the hub in it (bench/mqtt-floor.ts), run first; and the host's CPU speed in the same
 * run (mqtt.floor.cpu_*: canonical encodes and sodium verifies a second, one core), the scale
 * for the throughput bar: this VM has been seen at 162k / 26.6k and at 91k / 19.8k.
 * Diagnostic, prefix mqtt.transport.: the same load against a sign-only service (decode, verify
 * the terminal signature on the worker pool, sign the result; no ledger), which isolates what the
 * MQTT layer itself costs from what settlement costs.
 * Env: BENCH_MQTT_PHASE_MS (default 10000), BENCH_MQTT_WORKERS (verifier threads, default 1 as the hub's
 *      `verifierThreads`; 0 = inline),
 *      BENCH_MQTT_WINDOW (saturated closed-loop requests in flight, default 200),
 *      BENCH_MQTT_BROKERS (default floor,aedes,mosquitto,transport),
 *      BENCH_MQTT_PEAK_STEPS (closed-loop windows bisected for the peak, default 4; 0 = skip the
 *      search, for quick A/B runs of the saturated capacity),
 *      BENCH_MQTT_AEDES_ROUNDS (run the aedes phases this many times on the same hub, default 1:
 *      how the figures move as the ledger and registry grow),
 *      BENCH_MQTT_LEDGER_WRITER (1 = the ledger commits on its writer thread, still synchronous=FULL; default 1),
 *      BENCH_MQTT_TRACE (1 = print per phase where the slowest 1 % of requests spent their time:
 *      bench/request-trace.ts, and how many of their bursts a hub GC pause fell into; 2 = also one
 *      line per burst; a diagnostic, the wrapping costs some CPU),
 *      BENCH_MQTT_PROFILE (a directory: writes CPU and allocation profiles of the hub's main thread
 *      over the 1000 rps and saturated phases there, <prefix>1000rps.cpuprofile / .heapprofile and
 *      <prefix>saturated.*, for Chrome DevTools),
 *      BENCH_MQTT_PROFILE_LIVE (1 = the allocation profile shows only what survived a scavenge).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { decodeMessage, encodeMessage, fromHex, generateKeyPair, signingBytes, toHex } from '../protocol/index.ts';
import { createHub, type Hub } from '../hub/service/index.ts';
import { SqliteLedgerStore, type WriterCommitTimes } from '../hub/ledger/sqlite-store.ts';
import { createHubServer, type HubServer } from '../hub/mqtt/hub-server.ts';
import { HUB_USERNAME, brokerPasswordFor, writeMosquittoFiles, type MosquittoDirectory } from '../hub/mqtt/mosquitto-config.ts';
import { freePort, mosquittoAvailable, startMosquitto } from '../hub/mqtt/mosquitto-process.ts';
import type { SettlementHandler, TerminalLookup } from '../hub/mqtt/types.ts';
import { inlineVerifier, type SignatureVerifier } from '../hub/verify/verifier.ts';
import { fastSignMessage, nodeSigningKey } from '../simulators/load/purchase-request.ts';
import { WorkerVerifier } from '../hub/verify/worker-verifier.ts';
import { cpuSpeed, runFloor } from './mqtt-floor.ts';
import { PEAK_P99_BAR_MS, searchPeak, type Measured } from './peak-search.ts';
import { RequestTracer } from './request-trace.ts';
import { mainThreadCpuMs, mainThreadReadCalls } from './thread-cpu.ts';
import type { FleetFile, FleetTerminal, FleetWallet, FromGenerator, Phase, PhaseResult } from '../simulators/load/load-plan.ts';
import { fundSimulatedWallet } from '../simulators/fleet/fund.ts';

type Report = (name: string, value: number, unit: string) => void;

const TERMINALS = 200;
const WALLETS_PER_TERMINAL = 10;
const MERCHANTS = 20;
const PHASE_MS = Number(process.env['BENCH_MQTT_PHASE_MS'] ?? 10_000);
const WORKERS = Number(process.env['BENCH_MQTT_WORKERS'] ?? 1);
const WINDOW = Number(process.env['BENCH_MQTT_WINDOW'] ?? TERMINALS);
const BROKERS = (process.env['BENCH_MQTT_BROKERS'] ?? 'floor,aedes,mosquitto,transport').split(',');
const PEAK_STEPS = Number(process.env['BENCH_MQTT_PEAK_STEPS'] ?? 4);
const AEDES_ROUNDS = Number(process.env['BENCH_MQTT_AEDES_ROUNDS'] ?? 1);
const LEDGER_WRITER = (process.env['BENCH_MQTT_LEDGER_WRITER'] ?? '1') !== '0';
const TRACE = process.env['BENCH_MQTT_TRACE'];
const tracer = TRACE === '1' || TRACE === '2' ? new RequestTracer(TRACE === '2') : undefined;
const PROFILE_DIR = process.env['BENCH_MQTT_PROFILE'] || undefined;
/** BENCH_MQTT_PROFILE_LIVE=1: the allocation profile leaves out what scavenges freed: what it shows survived one (was copied, and mostly promoted). */
const PROFILE_LIVE = process.env['BENCH_MQTT_PROFILE_LIVE'] === '1';
const GENERATOR = fileURLToPath(new URL('../simulators/load/load-generator.ts', import.meta.url));

/** BENCH_MQTT_WORKERS=0 verifies on the main thread (for comparison). */
function makeVerifier(): SignatureVerifier {
  const verifier = WORKERS > 0 ? new WorkerVerifier({ workers: WORKERS }) : inlineVerifier;
  return tracer ? tracer.verifier(verifier) : verifier;
}

interface Fleet {
  readonly terminals: { terminalId: string; merchantId: string; secretKeyHex: string }[];
  readonly wallets: FleetWallet[];
}

async function setUpHub(dir: string): Promise<{ hub: Hub; fleet: Fleet }> {
  const hub = await createHub({
    dataDir: path.join(dir, 'hub'),
    verifier: makeVerifier(),
    holdReleaseIntervalMs: 0,
    logger: pino({ level: 'warn' }),
    ledgerStore: { writerThread: LEDGER_WRITER },
  });
  // Resolves once the request's batch is durable: the engine's turn plus the writer's commit.
  if (tracer) hub.engine.submit = tracer.timeCalls('commit', hub.engine.submit.bind(hub.engine)) as typeof hub.engine.submit;
  for (let m = 0; m < MERCHANTS; m++) {
    hub.importCatalog({ merchantId: `shop-${m}`, articles: [{ sku: 'coffee', name: 'Coffee', priceMinor: 250, currency: 'EUR' }] });
  }
  const terminals: Fleet['terminals'] = [];
  for (let i = 0; i < TERMINALS; i++) {
    const merchantId = `shop-${i % MERCHANTS}`;
    const enrolled = await hub.enrollTerminal({ terminalId: `pos-${i}`, kind: 'pos', merchantId });
    terminals.push({ terminalId: `pos-${i}`, merchantId, secretKeyHex: toHex(enrolled.keyPair!.secretKey) });
  }
  const wallets: FleetWallet[] = [];
  for (let chunk = 0; chunk < TERMINALS * WALLETS_PER_TERMINAL; chunk += 500) {
    const registered = await Promise.all(Array.from({ length: 500 }, () => hub.registerWallet({})));
    await Promise.all(registered.map((w) => fundSimulatedWallet(hub, w.license.body.wallet, 10_000_000, 'bench')));
    registered.forEach((w, i) => wallets.push({ secretKeyHex: toHex(w.keyPair!.secretKey), license: w.license, terminal: (chunk + i) % TERMINALS }));
  }
  return { hub, fleet: { terminals, wallets } };
}

/** Decode, verify the terminal's signature, sign an approval; idempotent by request id. No ledger. */
class SignOnlyService implements SettlementHandler {
  readonly keys = generateKeyPair();
  readonly hubKeyHex = toHex(this.keys.publicKey);
  private readonly signingKey = nodeSigningKey(this.keys.secretKey);
  private readonly replies = new Map<string, Uint8Array>();
  constructor(
    private readonly directory: TerminalLookup,
    private readonly verifier: SignatureVerifier,
  ) {}
  async handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    const now = Date.now();
    const decoded = decodeMessage(payload, 'settlement.request');
    if (!decoded.ok) return encodeMessage(fastSignMessage('error', { terminalId, code: decoded.code, message: decoded.detail.slice(0, 200), time: now, hubKey: this.hubKeyHex }, this.signingKey));
    const req = decoded.value;
    const previous = this.replies.get(req.body.requestId);
    if (previous) return previous;
    const terminal = this.directory.lookupTerminal(terminalId);
    const [ok] = terminal ? await this.verifier.verifyMany([{ signature: fromHex(req.sig), message: signingBytes(req), publicKey: fromHex(terminal.publicKey) }]) : [false];
    const amountMinor = req.body.op.type === 'purchase' ? req.body.op.authorization.body.amountMinor : 0;
    const reply = encodeMessage(
      fastSignMessage(
        'settlement.result',
        {
          requestId: req.body.requestId,
          terminalId,
          status: ok ? 'approved' : 'declined',
          ...(ok ? {} : { code: 'BAD_SIGNATURE' as const }),
          withdrawal: ok ? 'complete' : 'none',
          amountMinor,
          currency: 'EUR',
          time: now,
          hubKey: this.hubKeyHex,
        },
        this.signingKey,
      ),
    );
    if (this.replies.size >= 200_000) this.replies.clear();
    this.replies.set(req.body.requestId, reply);
    return reply;
  }
}

class Generator {
  private readonly child: ChildProcess;
  private readonly waiting: ((m: FromGenerator) => void)[] = [];
  constructor(fleetPath: string) {
    this.child = fork(GENERATOR, [fleetPath], { execArgv: ['--expose-gc', '--import', 'tsx', ...(process.env['BENCH_MQTT_PROFILE_GENERATOR'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_MQTT_PROFILE_GENERATOR']}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromGenerator) => this.waiting.shift()?.(m));
  }
  next(): Promise<FromGenerator> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
      this.child.once('exit', onExit);
      this.waiting.push((m) => {
        this.child.removeListener('exit', onExit);
        if (m.event === 'error') reject(new Error(`load generator: ${m.message}`));
        else resolve(m);
      });
    });
  }
  async phase(phase: Phase): Promise<PhaseResult> {
    const reply = this.next();
    this.child.send({ cmd: 'phase', phase });
    const m = await reply;
    if (m.event !== 'result') throw new Error(`load generator: unexpected ${m.event}`);
    return m.result;
  }
  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ cmd: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

function describe(r: PhaseResult): string {
  const declined = Object.entries(r.declined).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  return `${r.name}: sent ${r.sent}, approved ${r.approved}, declined ${declined}, timeouts ${r.timeouts}, ${r.settledPerS}/s, rtt p50 ${r.rttP50Ms.toFixed(2)} p90 ${r.rttP90Ms.toFixed(2)} p99 ${r.rttP99Ms.toFixed(2)} max ${r.rttMaxMs.toFixed(1)} ms${r.sendLagMsP99 > 0 ? ` (of which send lag p50 ${r.sendLagMsP50.toFixed(2)} p99 ${r.sendLagMsP99.toFixed(2)} ms)` : ''}, hub signatures checked ${r.signatureChecked} bad ${r.signatureBad}`;
}

/** The ledger writer's commit times since the last call (resets them); undefined without a ledger. */
type LedgerCommits = () => WriterCommitTimes | undefined;

function ledgerCommitsOf(hub: Hub): LedgerCommits {
  const store = hub.engine.store;
  return () => (store instanceof SqliteLedgerStore ? store.writerCommitTimes({ reset: true }) : undefined);
}

async function runPhases(
  prefix: string,
  server: HubServer,
  url: string,
  hubKeyHex: string,
  fleet: Fleet,
  passwords: ((id: string) => string) | undefined,
  dir: string,
  report: Report,
  ledgerCommits: LedgerCommits = () => undefined,
): Promise<void> {
  const fleetFile: FleetFile = {
    url,
    hubKeyHex,
    terminals: fleet.terminals.map((t): FleetTerminal => (passwords ? { ...t, password: passwords(t.terminalId) } : t)),
    wallets: fleet.wallets,
    sku: 'coffee',
    unitMinor: 250,
    currency: 'EUR',
  };
  const fleetPath = path.join(dir, `${prefix}fleet.json`);
  writeFileSync(fleetPath, JSON.stringify(fleetFile));
  const gen = new Generator(fleetPath);
  // Event-loop stalls of the hub's thread (GC, a synchronous SQLite step) show up here first.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const gc = gcPauses();
  try {
    const ready = await gen.next();
    if (ready.event === 'ready') console.error(`# ${prefix || 'aedes '}: ${TERMINALS} terminals connected in ${ready.connectMs} ms`);
    let hubCpu = process.cpuUsage();
    let mainCpuMs = mainThreadCpuMs();
    let mainReads = mainThreadReadCalls();
    const phase = async (p: Phase) => {
      server.resetStats();
      loopDelay.reset();
      gc.reset();
      ledgerCommits();
      tracer?.reset();
      hubCpu = process.cpuUsage();
      mainCpuMs = mainThreadCpuMs();
      mainReads = mainThreadReadCalls();
      return gen.phase(tracer ? { ...p, trace: true } : p);
    };
    /** Prints the phase's line; returns the hub's CPU (all threads) per approved request, in µs. */
    const check = (r: PhaseResult): number => {
      const st = server.stats();
      const cpu = process.cpuUsage(hubCpu);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      // Over the generator's phase time (its pre-signing before the phase leaves the hub idle).
      const hubCpuPercent = Math.round((cpuMs / r.elapsedMs) * 100);
      const mainMs = mainCpuMs === undefined ? undefined : (mainThreadCpuMs() as number) - mainCpuMs;
      // The event loop is what requests queue on: its CPU per request is the figure to drive down.
      const reads = mainReads === undefined ? undefined : (mainThreadReadCalls() as number) - mainReads;
      const readsPart = reads === undefined ? '' : `, ${(reads / Math.max(1, r.sent)).toFixed(2)} reads/request`;
      const main = mainMs === undefined ? '' : ` (main thread ${Math.round((mainMs / r.elapsedMs) * 100)}%, ${Math.round((mainMs * 1000) / Math.max(1, r.sent))} µs/request${readsPart})`;
      const commits = ledgerCommits();
      const ledger = commits ? `; ledger batches ${commits.commits} in ${commits.transactions} writer commits (+${commits.committedHere} on the engine thread), p50 ${commits.p50Ms.toFixed(2)} p99 ${commits.p99Ms.toFixed(2)} max ${commits.maxMs.toFixed(1)} ms` : '';
      console.error(`#   ${describe(r)}; hub: service time p50 ${st.serviceMsP50.toFixed(2)} p99 ${st.serviceMsP99.toFixed(2)} ms (last 4096), dropped ${st.dropped}, failed ${st.failed}; CPU hub ${hubCpuPercent}%${main} generator ${r.generatorCpuPercent}% of a core; hub event-loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} max ${(loopDelay.max / 1e6).toFixed(1)} ms; GC ${gc.describe()}, heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB${ledger}; load ${loadavg()[0]!.toFixed(1)}`);
      if (tracer && r.timings) console.error(`#     ${tracer.describe(r.timings, gc.intervals)}`);
      if (r.signatureBad > 0) throw new Error(`${r.name}: ${r.signatureBad} replies failed the hub signature check`);
      // What the hub process (all threads) spent per settled request: capacity ≈ cores × 1e6 / this.
      return Math.round((cpuMs * 1000) / Math.max(1, r.approved));
    };
    const closedLoop = async (window: number, file?: string): Promise<Measured> => {
      const run = () => phase({ name: `closed loop, ${window} in flight over ${TERMINALS} terminals`, mode: 'closed', window, durationMs: PHASE_MS });
      const result = file === undefined ? await run() : await profiled(file, run);
      return { window, result, cpuUsPerSettled: check(result) };
    };
    check(await phase({ name: 'warm-up', mode: 'closed', window: WINDOW, durationMs: Math.min(3000, PHASE_MS) }));
    const at100 = await phase({ name: 'open 100 rps', mode: 'open', rps: 100, durationMs: PHASE_MS });
    check(at100);
    report(`${prefix}rtt_p50_ms_at_100rps`, round(at100.rttP50Ms), 'ms');
    report(`${prefix}rtt_p99_ms_at_100rps`, round(at100.rttP99Ms), 'ms');
    const at1000 = await profiled(path.join(PROFILE_DIR ?? '', `${prefix}1000rps`), () => phase({ name: 'open 1000 rps', mode: 'open', rps: 1000, durationMs: PHASE_MS }));
    check(at1000);
    report(`${prefix}rtt_p50_ms_at_1000rps`, round(at1000.rttP50Ms), 'ms');
    report(`${prefix}rtt_p99_ms_at_1000rps`, round(at1000.rttP99Ms), 'ms');
    const saturated = await closedLoop(WINDOW, path.join(PROFILE_DIR ?? '', `${prefix}saturated`));
    report(`${prefix}saturated.settled_per_s`, saturated.result.settledPerS, '/s');
    report(`${prefix}saturated.hub_cpu_us_per_settled`, saturated.cpuUsPerSettled, 'µs');
    report(`${prefix}saturated.rtt_p99_ms`, round(saturated.result.rttP99Ms), 'ms');
    if (PEAK_STEPS === 0) return;
    const peak = await searchPeak(saturated, closedLoop, PEAK_STEPS);
    if (peak.result.rttP99Ms > PEAK_P99_BAR_MS) console.error(`# ${prefix}peak: no window met p99 ≤ ${PEAK_P99_BAR_MS} ms; the figures below are the smallest window's`);
    report(`${prefix}settled_per_s_peak`, peak.result.settledPerS, '/s');
    report(`${prefix}rtt_p99_ms_at_peak`, round(peak.result.rttP99Ms), 'ms');
    report(`${prefix}rtt_p50_ms_at_peak`, round(peak.result.rttP50Ms), 'ms');
    report(`${prefix}peak_window`, peak.window, 'in flight');
    report(`${prefix}hub_cpu_us_per_settled_at_peak`, peak.cpuUsPerSettled, 'µs');
  } finally {
    loopDelay.disable();
    gc.stop();
    await gen.close();
  }
}

/** Runs fn under V8's sampling CPU and allocation profilers when BENCH_MQTT_PROFILE names a directory; writes file.cpuprofile and file.heapprofile. */
async function profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
  if (PROFILE_DIR === undefined) return await fn();
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    // Allocation sampling beside it: every byte allocated brings the next scavenge closer.
    await session.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !PROFILE_LIVE });
    const result = await fn();
    // What was allocated since the last scavenge is not yet collected either: one more scavenge
    // leaves in the live profile only what survived one.
    if (PROFILE_LIVE) minorGc();
    const { profile } = await session.post('Profiler.stop');
    const { profile: heap } = await session.post('HeapProfiler.stopSampling');
    mkdirSync(PROFILE_DIR, { recursive: true });
    writeFileSync(`${file}.cpuprofile`, JSON.stringify(profile));
    writeFileSync(`${file}.heapprofile`, JSON.stringify(heap));
    console.error(`#     CPU and allocation profiles of the hub's main thread: ${file}.{cpuprofile,heapprofile}`);
    return result;
  } finally {
    session.disconnect();
  }
}

/** A scavenge now (V8's gc extension, enabled for this call only: no --expose-gc on the command line). */
function minorGc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as (o: { type: 'minor' }) => void)({ type: 'minor' });
}

function traced(service: SettlementHandler): SettlementHandler {
  return tracer ? tracer.service(service) : service;
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

export async function run(report: Report): Promise<void> {
  if (BROKERS.includes('floor')) {
    await runFloor(report, PHASE_MS);
    cpuSpeed(report, 'mqtt.floor.cpu');
  }
  if (!BROKERS.some((b) => b !== 'floor')) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'tapsettle-bench-mqtt-'));
  const setupStart = performance.now();
  const { hub, fleet } = await setUpHub(dir);
  console.error(`# set-up: ${TERMINALS} terminals, ${fleet.wallets.length} funded wallets in ${Math.round(performance.now() - setupStart)} ms; verifier threads ${WORKERS}; ledger ${LEDGER_WRITER ? 'writer thread' : 'main thread'}, synchronous=FULL; requests pre-signed by the generator before each phase (a real fleet signs on its own CPUs)`);
  const logger = pino({ level: 'warn' });
  try {
    if (BROKERS.includes('aedes')) {
      const server = await createHubServer({ service: traced(hub), directory: hub, logger });
      try {
        for (let round = 1; round <= AEDES_ROUNDS; round++) {
          // The figures of every round are printed under the same names, in round order.
          if (AEDES_ROUNDS > 1) console.error(`# aedes round ${round} of ${AEDES_ROUNDS}: the hub's stores hold what the rounds before settled`);
          await runPhases('mqtt.', server, server.url, hub.hubPublicKey, fleet, undefined, dir, report, ledgerCommitsOf(hub));
        }
      } finally {
        await server.close();
      }
    }
    if (BROKERS.includes('mosquitto')) {
      if (!mosquittoAvailable()) console.error('# mqtt.mosquitto.*: SKIPPED — no `mosquitto` binary on PATH');
    }
    if (BROKERS.includes('mosquitto') && mosquittoAvailable()) {
      const port = await freePort();
      const brokerSecret = randomBytes(32);
      const hubPassword = randomBytes(16).toString('hex');
      const listing: MosquittoDirectory = {
        listTerminals: () =>
          hub.registry.terminals().map((t) => ({ terminalId: t.terminalId, publicKey: t.publicKey, serial: t.serial, brokerPasswordScheme: t.brokerPasswordScheme, revoked: t.revoked })),
      };
      // Started as root, Mosquitto switches to its own account, which must get through this folder.
      chmodSync(dir, 0o711);
      const files = writeMosquittoFiles({ dir: path.join(dir, 'mosquitto'), port, directory: listing, brokerSecret, hubPassword });
      const mosquitto = await startMosquitto(files.configPath, port);
      try {
        const server = await createHubServer({ service: traced(hub), directory: hub, logger, external: { url: files.url, username: HUB_USERNAME, password: hubPassword } });
        try {
          await runPhases('mqtt.mosquitto.', server, files.url, hub.hubPublicKey, fleet, (id) => brokerPasswordFor(brokerSecret, hub.registry.terminal(id)!), dir, report, ledgerCommitsOf(hub));
        } finally {
          await server.close();
        }
      } finally {
        await mosquitto.stop();
      }
    }
    if (BROKERS.includes('transport')) {
      const verifier = makeVerifier();
      const service = new SignOnlyService(hub, verifier);
      const server = await createHubServer({ service: traced(service), directory: hub, logger });
      try {
        await runPhases('mqtt.transport.', server, server.url, service.hubKeyHex, fleet, undefined, dir, report);
      } finally {
        await server.close();
        await verifier.close();
      }
    }
  } finally {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** GC pauses of the hub's main thread per phase (minor = scavenge; major = mark-compact and its steps); worker heaps are not counted. */
function gcPauses(): { reset(): void; describe(): string; stop(): void; readonly intervals: Array<[number, number]> } {
  let minor: number[] = [];
  let major: number[] = [];
  /** [start, end] in absolute ms (timeOrigin-based, as the tracer stamps). */
  const intervals: Array<[number, number]> = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR ? minor : major).push(e.duration);
      const start = performance.timeOrigin + e.startTime;
      intervals.push([start, start + e.duration]);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const fmt = (xs: number[]) => `${xs.length} (${xs.reduce((a, b) => a + b, 0).toFixed(0)} ms, max ${Math.max(0, ...xs).toFixed(1)})`;
  return {
    reset: () => {
      minor = [];
      major = [];
      intervals.length = 0;
    },
    intervals,
    describe: () => `minor ${fmt(minor)} major ${fmt(major)}`,
    stop: () => obs.disconnect(),
  };
}
