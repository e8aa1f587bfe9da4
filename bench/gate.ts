// Benchmark group `gate`: an exit gate (the real terminal runtime) reading wallets through the real
// PN532 driver and serialport binding on the emulator (115200 baud, UART and 106 kbps air time
// paced), deciding locally, opening, and the real hub (aedes + SQLite, synchronous=FULL) settling
// the fare behind it.
//   gate.tap_to_open_p50_ms / _p99_ms: card present on the reader → barrier command (license
//     cached by the gate; gate.tap_to_open_cold_p50_ms: first passage of a card, license read).
//   gate.settled_within_ms_p99: barrier command → the hub's durable settlement of that fare.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { newChallenge, signMessage, type Envelope, type KeyPair } from '../protocol/index.ts';
import { createHub } from '../hub/service/index.ts';
import { createHubServer } from '../hub/mqtt/hub-server.ts';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { startProcessTerminal } from '../simulators/site/terminal-process.ts';
import { FARES } from '../test/terminal/harness.ts';

const PASSAGES = Number(process.env['BENCH_GATE_PASSAGES'] ?? 100);
const WALLETS = 10;


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
    const enrolled = await hub.enrollTerminal({ terminalId: 'gate-south', kind: 'gate', merchantId: 'transit' });
    const walletRegs: Array<{ keys: KeyPair; license: Envelope<'wallet.license'> }> = [];
    for (let i = 0; i < WALLETS; i++) {
      const reg = await hub.registerWallet({ offlineLimitMinor: 2000 });
      await hub.topUp({ wallet: reg.license.body.wallet, amountMinor: 1_000_000, operatorId: 'bench' });
      walletRegs.push({ keys: reg.keyPair as KeyPair, license: reg.license });
    }
    // The exit gate runs in its own process, as on its own Pi: the hub's fsyncs stay off its event loop.
    const exit = await startProcessTerminal({
      kind: 'gate',
      hubUrl: server.url,
      terminalId: 'gate-south',
      merchantId: 'transit',
      gate: { station: 'south', mode: 'exit', closeDelayMs: 100 },
      config: { hub: { timeoutMs: 3000, retryMs: 1000 } },
      credentials: { keys: enrolled.keyPair as KeyPair, certificate: enrolled.certificate, hubKey: hub.hubPublicKey, issuerKeys: [hub.issuerPublicKey] },
      wallets: walletRegs,
    });

    const nowEpochMs = (): number => performance.timeOrigin + performance.now();
    const settledAt = new Map<string, number>();
    hub.onSettlement((e) => settledAt.set(e.requestId, nowEpochMs()));
    const opened: Array<{ requestId: string; openAt: number }> = [];
    let presentAt = 0;
    let openAt = 0;
    let denied = false;
    let idle = true;
    exit.on((m) => {
      if (m.type === 'presented') presentAt = m.atMs;
      if (m.type === 'state') idle = m.s === 'idle';
      if (m.type !== 'command') return;
      if (process.env['BENCH_GATE_TRACE']) console.error(`  +${(m.atMs - presentAt).toFixed(1)} ms ${m.c}`);
      if (m.c === 'gate.open') openAt = m.atMs;
      if (m.c === 'gate.deny') denied = true;
      // The fare request follows the wallet's signature, which follows the barrier command.
      if (m.c === 'hub.request' && m.requestId !== undefined && openAt > 0) opened.push({ requestId: m.requestId, openAt });
    });
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const tapToOpen: number[] = [];
    const coldTapToOpen: number[] = [];
    let refused = 0;
    // The first passage of each wallet reads its license over NFC (≈480 bytes, cold); later ones
    // find it in the gate's UID-keyed cache, as for commuters passing every day. Both are reported.
    for (let i = 0; i < WALLETS + PASSAGES; i++) {
      const cold = i < WALLETS;
      const w = i % WALLETS;
      const wallet = walletRegs[w]!.license.body.wallet;
      const admission = signMessage(
        'gate.admission',
        { recordId: newChallenge(), wallet, terminalId: 'gate-north', station: 'north', time: Date.now() - 15 * 60_000 },
        entryKey.secretKey,
      );
      exit.storeRecord(w, 'Admission', admission);
      openAt = 0;
      denied = false;
      presentAt = 0;
      // Tap at a random phase of the reader's polling loop, as a customer would.
      await sleep(Math.random() * 15);
      exit.tap(w);
      const until = Date.now() + 5000;
      while (openAt === 0 && !denied && Date.now() < until) await sleep(1);
      if (openAt === 0 || presentAt === 0) refused += 1;
      else (cold ? coldTapToOpen : tapToOpen).push(openAt - presentAt);
      await sleep(20);
      while (!idle && Date.now() < until + 10_000) await sleep(2);
      exit.remove();
    }
    const settleDeadline = Date.now() + 15_000;
    while (opened.some((o) => !settledAt.has(o.requestId)) && Date.now() < settleDeadline) await new Promise((r) => setTimeout(r, 10));
    const settled = opened.filter((o) => settledAt.has(o.requestId)).map((o) => settledAt.get(o.requestId)! - o.openAt);
    tapToOpen.sort((a, b) => a - b);
    coldTapToOpen.sort((a, b) => a - b);
    settled.sort((a, b) => a - b);
    if (refused > 0 || settled.length < opened.length) console.warn(`bench gate: ${refused} refused, ${opened.length - settled.length} not settled`);
    report('gate.tap_to_open_p50_ms', round(percentile(tapToOpen, 50)), 'ms');
    report('gate.tap_to_open_p99_ms', round(percentile(tapToOpen, 99)), 'ms');
    report('gate.tap_to_open_cold_p50_ms', round(percentile(coldTapToOpen, 50)), 'ms');
    report('gate.settled_within_ms_p99', round(percentile(settled, 99)), 'ms');
    await exit.close();
  } finally {
    await server.close();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href.endsWith('/bench/gate.ts')) {
  await run((name, value, unit) => console.log(`${name}: ${value} ${unit}`));
}
