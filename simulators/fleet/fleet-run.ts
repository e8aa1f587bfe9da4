/**
 * `tapsettle sim`: a fleet of simulated terminals against a real hub on this machine. Sets up a
 * hub (SQLite ledger, embedded broker on a free port, worker-thread signature checks), enrolls
 * the terminals, registers and funds wallets (a few on purpose too poor to pay), then drives an
 * open-loop load of signed purchase requests from simulators/load's generator in its OWN
 * process, reports progress from the hub's live meter, and ends with verify-ledger.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { toHex } from '../../protocol/index.ts';
import { createHubSource, describeReport, type HubSource } from '../../hub/dashboard/hub-source.ts';
import { startDashboard, type Dashboard } from '../../hub/dashboard/server.ts';
import { instrumentHandler } from '../../hub/dashboard/instrument.ts';
import { LiveMeter } from '../../hub/dashboard/live-meter.ts';
import { createHubServer } from '../../hub/mqtt/hub-server.ts';
import { DataDirBusyError } from '../../hub/service/data-dir-lock.ts';
import { createHub, type Hub } from '../../hub/service/hub.ts';
import { fundSimulatedWallet } from './fund.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import type { FleetFile, FleetWallet, FromGenerator, PhaseResult } from '../load/load-plan.ts';

export interface FleetRunOptions {
  readonly terminals: number;
  readonly ratePerS: number;
  readonly durationS: number;
  readonly walletsPerTerminal: number;
  /** Keep the hub's data here; default a temp folder removed afterwards. */
  readonly dataDir?: string;
  readonly onProgress?: (p: FleetProgress) => void;
  readonly onStage?: (message: string) => void;
  /** Serve the operator dashboard (127.0.0.1, a free port) while the fleet runs. */
  readonly dashboard?: boolean;
  /** Abort (Ctrl-C): stops the generator; the run rejects after cleaning up. */
  readonly signal?: AbortSignal;
}

export interface FleetProgress {
  readonly elapsedS: number;
  readonly durationS: number;
  readonly settled: number;
  readonly declined: number;
  readonly settledPerS: number;
  readonly hubLatencyMsP99: number | null;
}

export interface FleetSummary {
  readonly terminals: number;
  readonly wallets: number;
  readonly ratePerS: number;
  readonly durationS: number;
  readonly sent: number;
  readonly settled: number;
  readonly declined: number;
  readonly declinedByCode: Record<string, number>;
  readonly timeouts: number;
  readonly settledPerS: number;
  /** Request → hub-signed result as the terminal sees it, from the scheduled send time. */
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly latencyMsMax: number;
  /** Request in → signed reply out, inside the hub. */
  readonly hubLatencyMsP50: number | null;
  readonly hubLatencyMsP99: number | null;
  readonly signaturesChecked: number;
  readonly signaturesBad: number;
  readonly conservation: { readonly ok: boolean; readonly detail: string };
  readonly dataDir: string | null;
}

const GENERATOR = fileURLToPath(new URL('../load/load-generator.ts', import.meta.url));
const SKU = 'snack';
const UNIT_MINOR = 250;
const MERCHANT = 'sim.shop';
const FUNDED_MINOR = 10_000_000;
/** Too little for one snack: these wallets are declined with INSUFFICIENT_FUNDS. */
const POOR_MINOR = 100;

function round(v: number | null, digits = 2): number | null {
  if (v === null || Number.isNaN(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function nextMessage(child: ChildProcess): Promise<FromGenerator> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`load generator exited with code ${code}`));
    child.once('exit', onExit);
    child.once('message', (m: FromGenerator) => {
      child.removeListener('exit', onExit);
      if (m.event === 'error') reject(new Error(`load generator: ${m.message}`));
      else resolve(m);
    });
  });
}

/** Marks a data folder as the simulator's own throw-away hub (it mints money into its ledger). */
export const SIM_DATA_DIR_MARKER = 'tapsettle-sim.txt';

/** `--data-dir` names a folder the simulator may not use (a real hub's, or one in use). */
export class SimDataDirError extends Error {
  readonly code = 'SIM_DATA_DIR';
}

/**
 * The simulator funds thousands of wallets out of thin air: it runs only on an empty folder, or
 * one an earlier run made (marked), never on a real hub's data.
 */
function claimSimDataDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new SimDataDirError(`--data-dir ${dir} is not a folder`);
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(path.join(dir, SIM_DATA_DIR_MARKER))) {
    throw new SimDataDirError(`--data-dir ${dir} is not empty and was not made by tapsettle sim: the simulator mints money into its hub's ledger, so it runs only in an empty folder or one of its own`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dir, SIM_DATA_DIR_MARKER), 'A throw-away hub made by `tapsettle sim`: its money is simulated.\n');
}

async function openSimHub(dataDir: string, logger: Logger): Promise<Hub> {
  try {
    return await createHub({ dataDir, verifier: new WorkerVerifier({ workers: 1 }), holdReleaseIntervalMs: 0, logger });
  } catch (err) {
    if (err instanceof DataDirBusyError) throw new SimDataDirError(`--data-dir ${dataDir} is in use by another hub (${err.message})`);
    throw err;
  }
}

export async function runFleet(o: FleetRunOptions): Promise<FleetSummary> {
  const stage = o.onStage ?? (() => {});
  if (o.dataDir !== undefined) claimSimDataDir(o.dataDir);
  const logger = pino({ level: 'error' }, pino.destination(2));
  const workDir = mkdtempSync(path.join(tmpdir(), 'tapsettle-sim-'));
  const dataDir = o.dataDir ?? path.join(workDir, 'hub');
  let hub: Hub;
  try {
    hub = await openSimHub(dataDir, logger);
  } catch (err) {
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
  let child: ChildProcess | undefined;
  try {
    // A fresh run id, so a reused --data-dir never collides with an earlier run's terminals.
    const run = toHex(randomBytes(3));
    stage(`setting up: ${o.terminals} terminals, ${o.terminals * o.walletsPerTerminal} wallets (run ${run})`);
    if (!hub.registry.latestCatalog(MERCHANT)) hub.importCatalog({ merchantId: MERCHANT, articles: [{ sku: SKU, name: 'Snack', priceMinor: UNIT_MINOR, currency: hub.currency }] });
    const terminals: FleetFile['terminals'][number][] = [];
    for (let i = 0; i < o.terminals; i++) {
      const terminalId = `sim-${run}-${String(i + 1).padStart(4, '0')}`;
      const enrolled = await hub.enrollTerminal({ terminalId, kind: 'pos', merchantId: MERCHANT });
      terminals.push({ terminalId, merchantId: MERCHANT, secretKeyHex: toHex(enrolled.keyPair!.secretKey) });
    }
    const walletCount = o.terminals * o.walletsPerTerminal;
    const poorEvery = 20; // 5 % of the wallets cannot pay
    const wallets: FleetWallet[] = [];
    for (let start = 0; start < walletCount; start += 500) {
      const n = Math.min(500, walletCount - start);
      const registered = await Promise.all(Array.from({ length: n }, () => hub.registerWallet({ offlineLimitMinor: 0 })));
      await Promise.all(
        registered.map((w, k) =>
          // The first wallet is always a funded one: a run with a single wallet still settles.
          fundSimulatedWallet(hub, w.license.body.wallet, (start + k) % poorEvery === poorEvery - 1 ? POOR_MINOR : FUNDED_MINOR, 'sim'),
        ),
      );
      registered.forEach((w, k) => wallets.push({ secretKeyHex: toHex(w.keyPair!.secretKey), license: w.license, terminal: (start + k) % o.terminals }));
    }

    // Two meters: a short window for the progress line, the whole run for the summary.
    const meter = new LiveMeter({ windowMs: 3_000, maxSamples: 200_000 });
    const whole = new LiveMeter({ windowMs: Math.round(o.durationS * 1000) + 600_000, maxSamples: 2_000_000 });
    const server = await createHubServer({
      service: instrumentHandler(instrumentHandler(
        {
          handleRequest: (t, p) => hub.handleRequest(t, p),
          answerReceipt: (t, p) => hub.answerReceipt(t, p),
          announcements: () => hub.announcements(),
          onAnnouncement: (cb) => hub.onAnnouncement(cb),
        },
        whole,
      ), meter),
      directory: hub,
      logger,
    });
    let dashboard: Dashboard | undefined;
    let source: HubSource | undefined;
    try {
      if (o.dashboard) {
        source = createHubSource({ hub, server: () => server, meter, name: 'tapsettle sim' });
        dashboard = await startDashboard({ source });
        stage(`dashboard ${dashboard.url}`);
      }
      const fleet: FleetFile = { url: server.url, hubKeyHex: hub.hubPublicKey, terminals, wallets, sku: SKU, unitMinor: UNIT_MINOR, currency: hub.currency };
      const fleetPath = path.join(workDir, 'fleet.json');
      writeFileSync(fleetPath, JSON.stringify(fleet), { mode: 0o600 });
      stage(`connecting ${o.terminals} terminals to ${server.url}`);
      if (o.signal?.aborted) throw new Error('interrupted');
      child = fork(GENERATOR, [fleetPath], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const generator = child;
      o.signal?.addEventListener('abort', () => generator.kill('SIGTERM'), { once: true });
      const ready = await nextMessage(child);
      if (ready.event !== 'ready') throw new Error(`load generator: unexpected ${ready.event}`);
      stage(`${o.terminals} terminals connected in ${ready.connectMs} ms; signing requests and sending ${o.ratePerS}/s for ${o.durationS} s`);

      const durationMs = Math.round(o.durationS * 1000);
      const resultP = nextMessage(child);
      child.send({ cmd: 'phase', phase: { name: 'sim', mode: 'open', rps: o.ratePerS, durationMs } });
      // The generator signs its requests ahead, then starts: time progress from the first answer.
      let firstMs: number | undefined;
      const progress = setInterval(() => {
        const now = Date.now();
        const t = meter.snapshot(now);
        if (firstMs === undefined && t.totalSettled + t.totalDeclined > 0) firstMs = now;
        o.onProgress?.({
          elapsedS: firstMs === undefined ? 0 : Math.min(o.durationS, (now - firstMs) / 1000),
          durationS: o.durationS,
          settled: t.totalSettled,
          declined: t.totalDeclined,
          settledPerS: t.settledPerS,
          hubLatencyMsP99: t.latencyMsP99,
        });
      }, 250);
      let result: PhaseResult;
      try {
        const m = await resultP;
        if (m.event !== 'result') throw new Error(`load generator: unexpected ${m.event}`);
        result = m.result;
      } finally {
        clearInterval(progress);
      }
      const exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      child.send({ cmd: 'exit' });
      await exited;
      child = undefined;

      const hubSide = whole.snapshot(Date.now());
      stage('checking the ledger (verify-ledger)');
      const report = await hub.verifyLedger();
      return {
        terminals: o.terminals,
        wallets: walletCount,
        ratePerS: o.ratePerS,
        durationS: o.durationS,
        sent: result.sent,
        settled: result.approved,
        declined: Object.values(result.declined).reduce((a, b) => a + b, 0),
        declinedByCode: result.declined,
        timeouts: result.timeouts,
        settledPerS: result.settledPerS,
        latencyMsP50: round(result.rttP50Ms) ?? 0,
        latencyMsP99: round(result.rttP99Ms) ?? 0,
        latencyMsMax: round(result.rttMaxMs, 1) ?? 0,
        hubLatencyMsP50: hubSide.latencyMsP50,
        hubLatencyMsP99: hubSide.latencyMsP99,
        signaturesChecked: result.signatureChecked,
        signaturesBad: result.signatureBad,
        conservation: { ok: report.ok, detail: describeReport(report) },
        dataDir: o.dataDir ? path.resolve(o.dataDir) : null,
      };
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await dashboard?.close();
      source?.close();
      await server.close();
    }
  } finally {
    await hub.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}
