// Start a terminal from a validated config: keys and certificate from their files, the durable
// store in dataDir, the hardware the config names, then the runtime.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { decodeMessage, fromHex, generateKeyPair, type Envelope, type KeyPair } from '../protocol/index.ts';
import { ConfigError, type TerminalConfig } from './config.ts';
import { openHardware, type OpenedHardware } from './devices.ts';
import { TerminalRuntime } from './runtime.ts';
import { TerminalStore } from './store/terminal-store.ts';

export interface StartedTerminal {
  runtime: TerminalRuntime;
  hardware: OpenedHardware;
  store: TerminalStore;
  close(): Promise<void>;
}

export function readTerminalKey(path: string): KeyPair {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`keyFile: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!/^[0-9a-f]{64}$/.test(text)) throw new ConfigError(`keyFile: ${path} must hold 64 lowercase hex chars (the Ed25519 secret key)`);
  return generateKeyPair(fromHex(text));
}

export function readCertificate(path: string): Envelope<'terminal.certificate'> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`certificateFile: cannot read ${path}: ${(err as Error).message}`);
  }
  const d = decodeMessage(text, 'terminal.certificate');
  if (!d.ok) throw new ConfigError(`certificateFile: ${path} is not a terminal certificate: ${d.code} ${d.detail}`);
  return d.value;
}

export async function startTerminal(config: TerminalConfig, options: { log?: Logger; clock?: () => number; hardware?: OpenedHardware } = {}): Promise<StartedTerminal> {
  const log = options.log ?? pino({ level: config.log.level, base: { terminalId: config.terminalId } });
  const keys = readTerminalKey(config.keyFile);
  const certificate = readCertificate(config.certificateFile);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const store = TerminalStore.open(join(config.dataDir, 'terminal.sqlite'));
  let hardware: OpenedHardware;
  try {
    hardware = options.hardware ?? (await openHardware(config, log));
  } catch (err) {
    store.close();
    throw err;
  }
  let runtime: TerminalRuntime;
  try {
    runtime = TerminalRuntime.start({ config, keys, certificate, reader: hardware.reader, devices: hardware.devices, store, log, ...(options.clock ? { clock: options.clock } : {}) });
  } catch (err) {
    await hardware.close();
    store.close();
    throw err;
  }
  log.info({ kind: config.kind, hub: config.hub.url, nfc: config.nfc.kind, io: config.io.kind }, 'terminal started');
  return {
    runtime,
    hardware,
    store,
    async close() {
      await runtime.close();
      await hardware.close();
      store.close();
    },
  };
}
