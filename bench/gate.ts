// Benchmark group `gate`: an exit gate (the real terminal runtime) reading wallets through the real
// PN532 driver and serialport binding on the emulator (115200 baud, UART and 106 kbps air time
// paced), deciding locally, opening, and the real hub (aedes + SQLite, synchronous=FULL) settling
// the fare behind it.
//   gate.tap_to_open_p50_ms / _p99_ms: card present on the reader → barrier command.
//   gate.settled_within_ms_p99: barrier command → the hub's durable settlement of that fare.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { encodeMessage, newChallenge, signMessage, type FareTable, type KeyPair } from '../protocol/index.ts';
import { createHub } from '../hub/service/index.ts';
import { createHubServer } from '../hub/mqtt/hub-server.ts';
import { RecordKind } from '../hardware/wallet-apdu/apdu.ts';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { SimulatedWallet } from '../simulators/wallet/simulated-wallet.ts';
import { startSimulatedTerminal } from '../simulators/site/start-simulated-terminal.ts';

const PASSAGES = Number(process.env['BENCH_GATE_PASSAGES'] ?? 100);
const WALLETS = 20;

const FARES: FareTable = {
  currency: 'EUR',
  stations: { north: 1, centre: 2, south: 4 },
  baseFareMinor: 150,
  perZoneMinor: 50,
  maxFareMinor: 600,
  maxTripMs: 3 * 3600_000,
  utcOffsetMinutes: 0,
  timeBands: [],
};

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

export async function run(report: (name: string, value: number, unit: string) => void): Promise<void> {
  if (!isSocatAvailable()) {
    console.warn('bench gate: socat not found, skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-bench-gate-'));
  const hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
  const server = await createHubServer({ service: hub, directory: hub, logger: pino({ level: 'silent' }) });
  try {
    hub.importFares(FARES);
    // The entry gate is enrolled (its admissions verify at the hub) but not run: entries are not measured.
    const entryGate = await hub.enrollTerminal({ terminalId: 'gate-north', kind: 'gate', merchantId: 'transit' });
    const entryKey = entryGate.keyPair as KeyPair;
    const exit = await startSimulatedTerminal({
      kind: 'gate',
      hubUrl: server.url,
      hub,
      terminalId: 'gate-south',
      merchantId: 'transit',
      gate: { station: 'south', mode: 'exit' },
      config: { hub: { timeoutMs: 3000, retryMs: 1000 } },
    });
    const wallets: SimulatedWallet[] = [];
    for (let i = 0; i < WALLETS; i++) {
      const reg = await hub.registerWallet({ offlineLimitMinor: 2000 });
      const w = new SimulatedWallet({ keys: reg.keyPair as KeyPair, license: reg.license, trustedHubKeys: [hub.hubPublicKey] });
      await hub.topUp({ wallet: w.publicKeyHex, amountMinor: 1_000_000, operatorId: 'bench' });
      wallets.push(w);
    }
    const deadline = Date.now() + 10_000;
    while (!(exit.runtime.isOnline && exit.runtime.fareTable)) {
      if (Date.now() > deadline) throw new Error('exit gate did not come online');
      await new Promise((r) => setTimeout(r, 20));
    }

    const settledAt = new Map<string, number>();
    hub.onSettlement((e) => settledAt.set(e.requestId, performance.now()));
    let presentAt = 0;
    let openAt = 0;
    let requestId = '';
    let denied = false;
    exit.runtime.on('tap', () => {
      if (process.env['BENCH_GATE_TRACE']) console.error(`  +${(performance.now() - presentAt).toFixed(1)} ms session`);
    });
    exit.runtime.on('command', (c) => {
      if (process.env['BENCH_GATE_TRACE']) console.error(`  +${(performance.now() - presentAt).toFixed(1)} ms ${c.c}`);
      if (c.c === 'gate.open') openAt = performance.now();
      if (c.c === 'gate.deny') denied = true;
      if (c.c === 'hub.request') requestId = c.requestId;
    });
    const tapToOpen: number[] = [];
    const opened: Array<{ requestId: string; openAt: number }> = [];
    let refused = 0;
    for (let i = 0; i < PASSAGES; i++) {
      const wallet = wallets[i % WALLETS]!;
      const admission = signMessage(
        'gate.admission',
        { recordId: newChallenge(), wallet: wallet.publicKeyHex, terminalId: 'gate-north', station: 'north', time: Date.now() - 15 * 60_000 },
        entryKey.secretKey,
      );
      wallet.applet.records.store(RecordKind.Admission, encodeMessage(admission), true);
      exit.nextVisitor({ kind: 'walk-through', walkInMs: 5, blockedMs: 10 });
      openAt = 0;
      denied = false;
      requestId = '';
      // Tap at a random phase of the reader's polling loop, as a customer would.
      await new Promise((r) => setTimeout(r, Math.random() * 15));
      presentAt = performance.now();
      exit.tap(wallet);
      const until = Date.now() + 5000;
      while (openAt === 0 && !denied && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
      if (openAt === 0) {
        refused += 1;
      } else {
        tapToOpen.push(openAt - presentAt);
        opened.push({ requestId, openAt });
      }
      while (exit.runtime.machineState.s !== 'idle' && Date.now() < until + 10_000) await new Promise((r) => setTimeout(r, 2));
      exit.remove();
    }
    const settleDeadline = Date.now() + 15_000;
    while (opened.some((o) => !settledAt.has(o.requestId)) && Date.now() < settleDeadline) await new Promise((r) => setTimeout(r, 10));
    const settled = opened.filter((o) => settledAt.has(o.requestId)).map((o) => settledAt.get(o.requestId)! - o.openAt);
    tapToOpen.sort((a, b) => a - b);
    settled.sort((a, b) => a - b);
    if (refused > 0 || settled.length < opened.length) console.warn(`bench gate: ${refused} refused, ${opened.length - settled.length} not settled`);
    report('gate.tap_to_open_p50_ms', round(percentile(tapToOpen, 50)), 'ms');
    report('gate.tap_to_open_p99_ms', round(percentile(tapToOpen, 99)), 'ms');
    report('gate.settled_within_ms_p99', round(percentile(settled, 99)), 'ms');
    await exit.close();
  } finally {
    await server.close();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run((name, value, unit) => console.log(`${name}: ${value} ${unit}`));
}
