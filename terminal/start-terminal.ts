// Start a terminal from a validated config: keys and certificate from their files, the durable
// store in dataDir, the hardware the config names, then the runtime.
import { accessSync, constants as fsConstants, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { decodeMessage, fromHex, generateKeyPair, toHex, type Envelope, type KeyPair } from '../protocol/index.ts';
import { isHardwareError, type HardwareError } from '../hardware/errors.ts';
import { plainTransportWarning } from './hub/plain-transport.ts';
import { ConfigError, printerKind, type TerminalConfig } from './config.ts';
import { loadIoPlugin, openHardware, type OpenedHardware, type ResolveIoPlugin } from './devices.ts';
import { TerminalRuntime } from './runtime.ts';
import { TerminalStore } from './store/terminal-store.ts';

/**
 * Start-up failures that are not the config's fault but the machine's: a device the config names
 * is missing or cannot be opened, dataDir cannot be created. Retrying can help (a USB reader
 * plugged in, udev fixing permissions, a file system remounted rw): terminal/main.ts exits with
 * a code the systemd unit restarts on (terminal/README.md, "Starting, --check and exit codes").
 */
export const START_ERROR_CODES = {
  DEVICE_UNAVAILABLE: 'a device the config names (nfc.path, io.port, the IO board, printer.path) is missing, not accessible or does not answer',
  DATA_DIR_UNAVAILABLE: 'dataDir cannot be created, or the store in it cannot be opened',
} as const;

export type StartErrorCode = keyof typeof START_ERROR_CODES;

export class StartError extends Error {
  constructor(
    readonly code: StartErrorCode,
    /** The config field naming the device or folder (`nfc.path`, `io.port`, `dataDir`, …). */
    readonly field: string,
    /** The device path or folder (or IO plugin name) concerned. */
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StartError';
  }
}

export function isStartError(err: unknown, code?: StartErrorCode): err is StartError {
  return err instanceof StartError && (code === undefined || err.code === code);
}
/**
 * Exit code when the actuator board's link is lost while running: EX_UNAVAILABLE (69), as a board
 * missing at start (terminal/main.ts), so the unit restarts the terminal.
 */
export const BOARD_LOST_EXIT_CODE = 69;

/** How long a terminal whose board is gone may take to close before it exits anyway. */
const BOARD_LOST_CLOSE_BOUND_MS = 8000;

export interface StartedTerminal {
  runtime: TerminalRuntime;
  hardware: OpenedHardware;
  store: TerminalStore;
  close(): Promise<void>;
}

const invalid = (issue: string): ConfigError => new ConfigError('invalid terminal config', [issue]);

export function readTerminalKey(path: string): KeyPair {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw invalid(`keyFile: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!/^[0-9a-f]{64}$/.test(text)) throw invalid(`keyFile: ${path} must hold 64 lowercase hex chars (the Ed25519 secret key)`);
  return generateKeyPair(fromHex(text));
}

export function readCertificate(path: string): Envelope<'terminal.certificate'> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalid(`certificateFile: cannot read ${path}: ${(err as Error).message}`);
  }
  if (isEnrollmentOutput(text)) {
    throw invalid(
      `certificateFile: ${path} is enroll-terminal's output (or reissue-certificate's), not the certificate: save its \`certificate\` field as the file ` +
        `(node -p 'JSON.stringify(JSON.parse(require("fs").readFileSync(0, "utf8")).certificate)' < output.json > terminal.cert.json), and its hubKey and issuerKey into the config`,
    );
  }
  const d = decodeMessage(text, 'terminal.certificate');
  if (!d.ok) throw invalid(`certificateFile: ${path} is not a terminal certificate: ${d.code} ${d.detail}`);
  return d.value;
}

/**
 * The whole output of `tapsettle enroll-terminal` ({ terminalId, certificate, hubKey, … }) or
 * `reissue-certificate` saved as the certificate: an object whose `certificate` is an object and
 * that is no envelope itself (an envelope has `v` and `body`). Decoding it said only
 * `UNSUPPORTED_VERSION v=undefined`.
 */
function isEnrollmentOutput(text: string): boolean {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return false;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return false;
  const o = raw as Record<string, unknown>;
  return o['certificate'] !== null && typeof o['certificate'] === 'object' && !('v' in o) && !('body' in o);
}

export interface TerminalCredentials {
  keys: KeyPair;
  certificate: Envelope<'terminal.certificate'>;
}

/** Test seams of checkTerminalConfig: where IO plugins are looked up, and the uid a root-only plugin is checked against. */
export interface CheckOptions {
  resolveIoPlugin?: ResolveIoPlugin;
  uid?: number | undefined;
}

/**
 * Everything about a loaded config that can be checked without touching devices or dataDir,
 * run by `main.ts --check` and by startTerminal alike: the key and the certificate are read and
 * parsed, the key is the certificate's key, the certificate names this terminal id, merchant
 * and kind (TerminalRuntime keeps the same guard), and `io.ioPlugin` is installed, loads, has
 * the IO class to construct and, when it needs root, runs as root (devices.ts `loadIoPlugin`; the
 * class is not constructed: that opens the GPIO). Every problem is a ConfigError naming the
 * field (exit 78: retrying does not help).
 */
export async function checkTerminalConfig(config: TerminalConfig, options: CheckOptions = {}): Promise<TerminalCredentials> {
  const keys = readTerminalKey(config.keyFile);
  const certificate = readCertificate(config.certificateFile);
  const c = certificate.body;
  const issues: string[] = [];
  const names = [
    ['terminalId', c.terminalId, config.terminalId],
    ['merchantId', c.merchantId, config.merchantId],
    ['kind', c.kind, config.kind],
  ] as const;
  for (const [field, inCert, inConfig] of names) {
    if (inCert !== inConfig) issues.push(`certificateFile: ${config.certificateFile} is for ${field} "${inCert}", the config has ${field} "${inConfig}" (the certificate of another terminal?)`);
  }
  const publicKey = toHex(keys.publicKey);
  if (c.publicKey !== publicKey) {
    issues.push(`keyFile: ${config.keyFile} does not match certificateFile ${config.certificateFile}: its public key is ${publicKey}, the certificate's is ${c.publicKey}`);
  }
  if (issues.length > 0) throw new ConfigError('invalid terminal config', issues);
  await loadIoPlugin(config, { ...(options.resolveIoPlugin ? { resolve: options.resolveIoPlugin } : {}), uid: 'uid' in options ? options.uid : process.getuid?.() });
  return { keys, certificate };
}

/**
 * A serial device the config names must exist and be readable and writable before the drivers
 * open it: a missing one is a StartError (a USB adapter may be plugged in later; systemd retries),
 * and johnny-five's Firmata would otherwise die on an unhandled 'error' event. A path that
 * exists but is no device (a file, a folder) is a ConfigError.
 */
function checkDevicePath(field: string, path: string, what: string, kindOfDevice = 'a serial device (a character device such as /dev/serial0 or /dev/ttyUSB0)', group = 'dialout'): void {
  let isDevice: boolean;
  try {
    isDevice = statSync(path).isCharacterDevice();
    if (isDevice) accessSync(path, fsConstants.R_OK | fsConstants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'ENOENT' ? `does not exist (${what} not connected?)` : e.code === 'EACCES' ? `is not readable and writable by this user (in the ${group} group?)` : `cannot be opened: ${e.message}`;
    throw new StartError('DEVICE_UNAVAILABLE', field, path, `${field}: ${path} ${hint}`, { cause: err });
  }
  if (!isDevice) throw invalid(`${field}: ${path} is not ${kindOfDevice}`);
}

function checkDevices(config: TerminalConfig): void {
  if (config.nfc.kind === 'pn532') checkDevicePath('nfc.path', config.nfc.path, 'PN532');
  if (config.io.kind === 'johnny-five' && config.io.port !== undefined) checkDevicePath('io.port', config.io.port, 'Firmata board');
  if (config.printer !== undefined) {
    if (printerKind(config.printer) === 'device') {
      checkDevicePath('printer.path', config.printer.path, 'receipt printer', 'a printer device (a character device such as /dev/usb/lp0)', 'lp');
    } else {
      checkDevicePath('printer.path', config.printer.path, 'receipt printer');
    }
  }
}

/** The innermost message of an error's cause chain (the OS's or the driver's own words). */
function rootMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** A driver's HardwareError while opening the devices, as a StartError naming the config field. */
function deviceError(config: TerminalConfig, err: unknown): unknown {
  if (!isHardwareError(err)) return err;
  let field: string;
  let path: string;
  if (err.code.startsWith('NFC_')) {
    field = config.nfc.kind === 'pn532' ? 'nfc.path' : 'nfc';
    path = config.nfc.kind === 'pn532' ? config.nfc.path : '(emulated PN532)';
  } else if (err.code.startsWith('PRINTER_') && config.printer !== undefined) {
    field = 'printer.path';
    path = config.printer.path;
  } else if (config.io.kind === 'johnny-five') {
    field = config.io.port !== undefined ? 'io.port' : config.io.ioPlugin !== undefined ? 'io.ioPlugin' : 'io';
    path = config.io.port ?? config.io.ioPlugin ?? '(johnny-five default)';
  } else {
    field = 'io';
    path = '(virtual IO board)';
  }
  const cause = rootMessage(err);
  const what = err.message.includes(path) ? err.message : `${path}: ${err.message}`;
  return new StartError('DEVICE_UNAVAILABLE', field, path, `${field}: ${what}${cause !== err.message ? ` (${cause.replace(/^Error: /, '')})` : ''} [${err.code}]`, { cause: err });
}

function openStore(config: TerminalConfig): TerminalStore {
  const fail = (what: string, err: unknown): StartError =>
    new StartError('DATA_DIR_UNAVAILABLE', 'dataDir', config.dataDir, `dataDir: ${what}: ${(err as Error).message}`, { cause: err });
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fail(`cannot create ${config.dataDir}`, err);
  }
  const file = join(config.dataDir, 'terminal.sqlite');
  try {
    return TerminalStore.open(file);
  } catch (err) {
    // The file system's refusals (permissions, read-only); anything else (a corrupt store) stays a crash.
    if (/^SQLITE_(CANTOPEN|READONLY|PERM|IOERR)/.test(String((err as { code?: unknown }).code))) throw fail(`cannot open ${file}`, err);
    throw err;
  }
}

/**
 * `options.log` must not bind `terminalId`: the runtime binds it (with `kind`) to its own lines and
 * this function to the rest (the devices', its own), so each line carries it once — a child bound
 * again repeats the key in the JSON line.
 */
export async function startTerminal(
  config: TerminalConfig,
  /** `exit`: what ends the process when the board is lost (default process.exit; tests pass their own). */
  options: { log?: Logger; clock?: () => number; hardware?: OpenedHardware; exit?: (code: number) => void } = {},
): Promise<StartedTerminal> {
  const base = options.log ?? pino({ level: config.log.level, base: {} });
  const log = base.child({ terminalId: config.terminalId });
  // Config problems first (ConfigError), then the machine's: nothing is created before these pass.
  const { keys, certificate } = await checkTerminalConfig(config);
  if (!options.hardware) checkDevices(config);
  const store = openStore(config);
  let hardware: OpenedHardware;
  try {
    hardware = options.hardware ?? (await openHardware(config, log));
  } catch (err) {
    store.close();
    throw deviceError(config, err);
  }
  let runtime: TerminalRuntime;
  try {
    runtime = TerminalRuntime.start({ config, keys, certificate, reader: hardware.reader, devices: hardware.devices, store, log: base, ...(options.clock ? { clock: options.clock } : {}) });
  } catch (err) {
    await hardware.close();
    store.close();
    throw err;
  }
  log.info({ kind: config.kind, hub: config.hub.url, nfc: config.nfc.kind, io: config.io.kind, printer: config.printer ? `${printerKind(config.printer)} ${config.printer.path}` : 'none' }, 'terminal started');
  const plain = plainTransportWarning(config.hub.url);
  if (plain) log.warn({ code: plain.code, hub: config.hub.url }, plain.message);
  let stopWatchingBoard = (): void => undefined;
  const terminal: StartedTerminal = {
    runtime,
    hardware,
    store,
    async close() {
      stopWatchingBoard(); // a board closed after a deliberate stop is no reason to exit 69
      // The runtime first (it stops reading taps and finishes a dispense), then the devices it
      // used, the store last; each even if the one before failed.
      try {
        await runtime.close();
      } finally {
        try {
          await hardware.close();
        } finally {
          store.close();
        }
      }
    },
  };
  stopWatchingBoard = exitWhenBoardLost(terminal, log, options.exit ?? ((code) => process.exit(code)));
  return terminal;
}

/**
 * A board whose link is gone cannot be reopened by johnny-five, and a motor or barrier it left on
 * stays on until its firmware acts (hardware/README.md, "Lost board link"). Say so once, close
 * what can be closed (a dispense in progress ends at once as failed; the store recovers open
 * sales at the next start), and exit EX_UNAVAILABLE: systemd restarts the terminal.
 */
function exitWhenBoardLost(terminal: StartedTerminal, log: Logger, exit: (code: number) => void): () => void {
  return terminal.hardware.board.onLost((err: HardwareError) => {
    log.fatal({ code: err.code, err, exitCode: BOARD_LOST_EXIT_CODE }, 'actuator board lost: nothing can be switched or read; exiting for systemd to restart the terminal');
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, BOARD_LOST_CLOSE_BOUND_MS)));
    const closing = terminal.close().catch((closeErr: unknown) => log.error({ err: closeErr }, 'close after the board was lost failed'));
    void Promise.race([closing, bound]).then(() => {
      clearTimeout(timer);
      log.flush();
      exit(BOARD_LOST_EXIT_CODE);
    });
  });
}
