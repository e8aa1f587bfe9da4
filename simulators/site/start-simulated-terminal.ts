// A whole simulated terminal: the real terminal runtime (config file → startTerminal) with a PN532
// emulator on a pty (read through the real PN532 driver) and the virtual johnny-five IO board
// with its physics (people walking through the gate, articles dropping). Tests and `npm start`
// tap simulated wallets, choose articles and press keys on it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { toHex, type Envelope, type KeyPair } from '../../protocol/index.ts';
import type { ContactlessCard } from '../wallet/contactless-card.ts';
import { parseConfig, type TerminalConfig, type TerminalConfigInput } from '../../terminal/config.ts';
import { readCertificate, readTerminalKey, startTerminal, type StartedTerminal } from '../../terminal/start-terminal.ts';
import type { TerminalRuntime } from '../../terminal/runtime.ts';
import type { Visitor } from '../virtual-io/sensor-sims.ts';
import type { SlotBehaviour } from '../virtual-io/sensor-sims.ts';

/** What the site needs from a hub to enroll the terminal (structurally hub/service's Hub). */
export interface EnrollingHub {
  /** The hub key a new terminal pins (it signs the keys announcement that names the others). */
  readonly trustAnchorKey: string;
  readonly issuerPublicKey: string;
  enrollTerminal(input: { terminalId: string; kind: 'vending' | 'gate' | 'pos'; merchantId: string; publicKey?: string }): Promise<{
    certificate: Envelope<'terminal.certificate'>;
    keyPair?: KeyPair;
  }>;
}

export interface SimulatedTerminalOptions {
  kind: 'vending' | 'gate' | 'pos';
  hubUrl: string;
  /** Enrolls the terminal at this hub (or pass `credentials`). */
  hub?: EnrollingHub;
  credentials?: { keys: KeyPair; certificate: Envelope<'terminal.certificate'>; hubKey: string; issuerKeys: string[] };
  terminalId?: string;
  merchantId?: string;
  gate?: { station: string; mode: 'entry' | 'exit'; passageTimeoutMs?: number; closeDelayMs?: number; inPassageMaxMs?: number };
  /** Keep state across restarts by passing the same dir; default a fresh temp dir (removed on close). */
  dataDir?: string;
  /** The terminal's clock (default Date.now): tests move it to stage a deadline. */
  clock?: () => number;
  /** Anything else of the terminal config (hub timeouts, limits, POS operators, …). */
  config?: Partial<Omit<TerminalConfigInput, 'kind' | 'terminalId' | 'merchantId' | 'dataDir' | 'keyFile' | 'certificateFile' | 'nfc' | 'io' | 'hub'>> & {
    hub?: Partial<TerminalConfigInput['hub']>;
  };
  log?: Logger;
}

export interface SimulatedTerminal {
  readonly terminalId: string;
  readonly config: TerminalConfig;
  readonly runtime: TerminalRuntime;
  readonly started: StartedTerminal;
  readonly dataDir: string;
  readonly configPath: string;
  /** Put a wallet on the emulated reader and keep it there. */
  tap(card: ContactlessCard): void;
  /** Pull the wallet away. */
  remove(): void;
  /** The next InDataExchange finds the card gone (pulled mid-tap). */
  pullOnNextExchange(): void;
  /** The card processes the next APDU, then leaves before its answer comes back (the answer is lost). */
  pullAfterNextExchange(): void;
  /** Gate: what the next person does when the barrier opens (default: walks through). */
  nextVisitor(v: Visitor): void;
  /** Vending: how a slot's mechanism behaves (drops, jammed, empty). */
  setSlot(slot: number, behaviour: SlotBehaviour): void;
  close(options?: { keepData?: boolean }): Promise<void>;
}

let counter = 0;

export async function startSimulatedTerminal(options: SimulatedTerminalOptions): Promise<SimulatedTerminal> {
  counter += 1;
  const terminalId = options.terminalId ?? `sim-${options.kind}-${process.pid}-${counter}`;
  const merchantId = options.merchantId ?? `merchant-${options.kind}`;
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `tapsettle-site-${options.kind}-`));
  mkdirSync(dataDir, { recursive: true });
  const keyFile = join(dataDir, 'terminal.key');
  const certificateFile = join(dataDir, 'terminal.cert.json');

  let creds = options.credentials;
  if (!creds && existsSync(keyFile) && existsSync(certificateFile) && existsSync(join(dataDir, 'trust.json')) && options.hub) {
    // A restart on the same data dir: the terminal keeps its enrolled key, certificate and pinned keys.
    const trust = JSON.parse(readFileSync(join(dataDir, 'trust.json'), 'utf8')) as { hubKey: string; issuerKeys: string[] };
    creds = { keys: readTerminalKey(keyFile), certificate: readCertificate(certificateFile), hubKey: trust.hubKey, issuerKeys: trust.issuerKeys };
  }
  if (!creds) {
    if (!options.hub) throw new TypeError('startSimulatedTerminal: pass options.hub (to enroll) or options.credentials');
    const enrolled = await options.hub.enrollTerminal({ terminalId, kind: options.kind, merchantId });
    if (!enrolled.keyPair) throw new TypeError('startSimulatedTerminal: the hub did not return a key pair');
    creds = { keys: enrolled.keyPair, certificate: enrolled.certificate, hubKey: options.hub.trustAnchorKey, issuerKeys: [options.hub.issuerPublicKey] };
  }
  writeFileSync(keyFile, toHex(creds.keys.secretKey), { mode: 0o600 });
  writeFileSync(certificateFile, JSON.stringify(creds.certificate));
  writeFileSync(join(dataDir, 'trust.json'), JSON.stringify({ hubKey: creds.hubKey, issuerKeys: creds.issuerKeys }));

  const raw: TerminalConfigInput = {
    ...options.config,
    terminalId,
    kind: options.kind,
    merchantId,
    dataDir: join(dataDir, 'state'),
    keyFile,
    certificateFile,
    hub: { hubKey: creds.hubKey, issuerKeys: creds.issuerKeys, ...options.config?.hub, url: options.hubUrl },
    nfc: { kind: 'emulated', pollIntervalMs: 10 },
    io: { kind: 'virtual' },
    ...(options.gate ? { gate: options.gate } : {}),
    ...(options.kind === 'vending' ? { vending: { dropTimeoutMs: 1500, ...options.config?.vending } } : {}),
  };
  const configPath = join(dataDir, 'terminal.json');
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  const config = parseConfig(raw, dataDir, {});
  const log = options.log ?? pino({ level: 'silent' });
  const started = await startTerminal(config, { log, ...(options.clock ? { clock: options.clock } : {}) });
  const { emulator, walker, mechanics } = started.hardware.sim;
  if (!emulator) throw new Error('startSimulatedTerminal: no emulated reader');
  // By default everyone walks through when the barrier opens.
  const defaultVisitor: Visitor = { kind: 'walk-through', walkInMs: 30, blockedMs: 60 };
  let queued = false;
  started.runtime.on('command', (c) => {
    if (c.c === 'gate.open' && walker) {
      if (!queued) walker.enqueue(defaultVisitor);
      queued = false;
    }
  });

  return {
    terminalId,
    config,
    runtime: started.runtime,
    started,
    dataDir,
    configPath,
    tap: (card) => emulator.emulator.present(card),
    remove: () => emulator.emulator.remove(),
    pullOnNextExchange: () => {
      emulator.emulator.faults.pullOnNextExchange = true;
    },
    pullAfterNextExchange: () => {
      emulator.emulator.faults.pullAfterNextExchange = true;
    },
    nextVisitor: (v) => {
      if (!walker) throw new Error('nextVisitor: not a gate');
      walker.enqueue(v);
      queued = true;
    },
    setSlot: (slot, behaviour) => {
      if (!mechanics) throw new Error('setSlot: not a vending machine');
      mechanics.setSlot(slot, behaviour);
    },
    async close({ keepData = false } = {}) {
      await started.close();
      if (ownDir && !keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
