// Hardware chosen by config: a real PN532 on a serial path or the PN532 emulator on a pty; a
// johnny-five board (Firmata over serial, or an IO plugin such as raspi-io) or the virtual IO
// board; an ESC/POS receipt printer (serial port or /dev/usb/lp0) when the config has `printer`.
// Simulator modules are imported only when the config asks for them.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { HardwareError, isHardwareError } from '../hardware/errors.ts';
import { DeviceReceiptPrinter } from '../hardware/printer/device-receipt-printer.ts';
import type { ReceiptPrinter } from '../hardware/printer/receipt-printer.ts';
import { SerialReceiptPrinter } from '../hardware/printer/serial-receipt-printer.ts';
import type { HardwareLink } from '../hardware/actuators/board-link.ts';
import { openJ5Board, type J5Board } from '../hardware/actuators/j5-board.ts';
import { createJ5Gate, type J5GatePins } from '../hardware/actuators/j5-gate.ts';
import { createJ5Pos, type J5PosPins } from '../hardware/actuators/j5-pos.ts';
import { createJ5Vending, type J5VendingPins } from '../hardware/actuators/j5-vending.ts';
import { ConsoleDisplay } from '../hardware/actuators/pos.ts';
import { Pn532NfcReader } from '../hardware/nfc/pn532-nfc-reader.ts';
import type { NfcReader } from '../hardware/nfc/nfc-reader.ts';
import type { EmulatedReader } from '../simulators/pn532-emulator/start-emulated-reader.ts';
import type { GateWalker, VendingMechanics } from '../simulators/virtual-io/sensor-sims.ts';
import type { VirtualIo } from '../simulators/virtual-io/virtual-io.ts';
import { ConfigError, printerKind, type TerminalConfig } from './config.ts';
import type { TerminalDevices } from './runtime.ts';

/** Pin maps used on the virtual board (and a sane default wiring for a Pi + relay board). */
export const VIRTUAL_PINS = {
  gate: { barrier: { kind: 'relay', pin: 2 }, beam: { pin: 3, blockedLevel: 0 }, entryLed: 4, exitLed: 5, deniedLed: 6, buzzer: 7 } satisfies J5GatePins,
  vendingDropPin: 19,
  vendingFirstMotorPin: 8,
  pos: { greenLed: 4, yellowLed: 5, redLed: 6, buzzer: 7 } satisfies J5PosPins,
} as const;

export interface OpenedHardware {
  reader: NfcReader;
  devices: TerminalDevices;
  /** Present when simulated: the emulator to tap wallets on, the virtual board and its physics. */
  sim: { emulator?: EmulatedReader; io?: VirtualIo; walker?: GateWalker; mechanics?: VendingMechanics };
  /**
   * The actuator board's link (ACTUATOR_LINK_LOST). Unlike the NFC reader it is not reconnected:
   * johnny-five cannot re-open a board, so the process must restart (start-terminal.ts exits).
   */
  readonly board: HardwareLink;
  close(): Promise<void>;
}

/** A johnny-five IO plugin's class (or factory function: raspi-io's `RaspiIO` returns its IO object). */
export type IoPluginClass = new () => unknown;

/** Where `io.ioPlugin` is looked up: from this folder, the install's node_modules. Tests pass their own. */
export type ResolveIoPlugin = (name: string) => string;
const resolveFromInstall: ResolveIoPlugin = (name) => import.meta.resolve(name);

/** The repository root (where `npm install` puts an IO plugin so that this module can import it). */
export const INSTALL_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * IO plugins that only work as root. raspi-io (11.x) drives the GPIO through the pigpio C library
 * (raspi-gpio → pigpio), which maps the SoC's registers itself; its README: "this module must be
 * run as root". The terminal's unit runs as User=tapsettle with NoNewPrivileges=true.
 */
const ROOT_ONLY_IO_PLUGINS: Readonly<Record<string, string>> = {
  'raspi-io': 'raspi-io drives the GPIO through the pigpio C library, which must run as root (raspi-io\'s README)',
};

const pluginInvalid = (issue: string): ConfigError => new ConfigError('invalid terminal config', [`io.ioPlugin: ${issue}`]);

/**
 * The class to construct from an IO plugin module (what `import()` returns): `io.ioPluginExport`
 * when the config names one; else a default export that is a function (a CommonJS
 * `module.exports = class …`); else the module's only exported function (raspi-io 11:
 * `require('raspi-io').RaspiIO`, no default). Anything else is a ConfigError naming the exports.
 */
export function pickIoPluginClass(name: string, mod: Record<string, unknown>, exportName?: string): IoPluginClass {
  const def = mod['default'];
  // A CommonJS module's exports are on `default`; Node also lifts the ones it detects to the namespace.
  const named = new Map<string, unknown>(Object.entries(mod).filter(([k]) => k !== 'default'));
  if (def !== null && typeof def === 'object') for (const [k, v] of Object.entries(def)) if (!named.has(k)) named.set(k, v);
  const functions = [...named].filter(([, v]) => typeof v === 'function').map(([k]) => k);
  const listed = functions.length > 0 ? `its exported functions: ${functions.join(', ')}` : 'it exports no function';
  if (exportName !== undefined) {
    const picked = exportName === 'default' ? def : named.get(exportName);
    if (typeof picked === 'function') return picked as IoPluginClass;
    throw new ConfigError('invalid terminal config', [`io.ioPluginExport: "${name}" has no exported class "${exportName}" (${listed})`]);
  }
  if (typeof def === 'function') return def as IoPluginClass;
  if (functions.length === 1) return named.get(functions[0]!) as IoPluginClass;
  throw pluginInvalid(
    `"${name}" has no default export to construct and ${functions.length === 0 ? 'no exported function' : `several exported functions (${functions.join(', ')})`}: name the IO class in io.ioPluginExport`,
  );
}

/**
 * Imports `io.ioPlugin` and picks its IO class, without constructing it (that opens the GPIO, which
 * the running service holds): a plugin that is not installed or does not load, an export that is
 * not there, or — given the process's `uid` — a root-only plugin in a process that is not root, is
 * a ConfigError (exit 78). `--check` and the start both run it (checkTerminalConfig) before
 * anything is created.
 */
export async function loadIoPlugin(config: TerminalConfig, options: { resolve?: ResolveIoPlugin; uid?: number | undefined } = {}): Promise<IoPluginClass | undefined> {
  if (config.io.kind !== 'johnny-five' || config.io.ioPlugin === undefined) return undefined;
  const name = config.io.ioPlugin;
  let url: string;
  try {
    url = (options.resolve ?? resolveFromInstall)(name);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') throw pluginInvalid(`the IO plugin package "${name}" is not installed; install it with: cd ${INSTALL_DIR} && npm install ${name}`);
    throw pluginInvalid(`cannot resolve "${name}": ${e.code ?? ''} ${e.message}`.replace(/ {2,}/g, ' '));
  }
  const why = ROOT_ONLY_IO_PLUGINS[name];
  const uid = options.uid;
  if (why !== undefined && uid !== undefined && uid !== 0) {
    throw pluginInvalid(
      `${why}, and this process runs as uid ${uid}, not root: under the terminal's unit (User=tapsettle, NoNewPrivileges=true) it cannot start. ` +
        'Drive the actuators from an Arduino with StandardFirmata on USB instead (io.port, e.g. /dev/ttyACM0; no ioPlugin) — terminal/README.md, "Raspberry Pi OS install", step 3',
    );
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw pluginInvalid(`"${name}" is installed but does not load here: ${(err as Error).message.split('\n')[0]}`);
  }
  return pickIoPluginClass(name, mod, config.io.ioPluginExport);
}

export async function openHardware(config: TerminalConfig, log: Logger, options: { resolveIoPlugin?: ResolveIoPlugin } = {}): Promise<OpenedHardware> {
  const closers: Array<() => Promise<void> | void> = [];
  const sim: OpenedHardware['sim'] = {};
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch((err: unknown) => log.warn({ err }, 'close failed'));
  };
  try {
    // ---- NFC ----
    let readerPath: string;
    let pollIntervalMs: number;
    let exchangeTimeoutMs = 1500;
    if (config.nfc.kind === 'emulated') {
      const { startEmulatedReader } = await import('../simulators/pn532-emulator/start-emulated-reader.ts');
      sim.emulator = await startEmulatedReader();
      closers.push(() => sim.emulator?.close());
      readerPath = sim.emulator.path;
      pollIntervalMs = config.nfc.pollIntervalMs;
    } else {
      readerPath = config.nfc.path;
      pollIntervalMs = config.nfc.pollIntervalMs;
      exchangeTimeoutMs = config.nfc.exchangeTimeoutMs;
    }
    const reader = await Pn532NfcReader.open({ path: readerPath, baudRate: 115_200, pollIntervalMs, exchangeTimeoutMs, bitRateKbps: config.nfc.bitRateKbps });
    closers.push(() => reader.close());
    logReaderLink(reader, log.child({ nfcPath: readerPath }));

    // ---- actuators (johnny-five, real or virtual IO) ----
    let board: J5Board;
    let gatePins: J5GatePins | undefined;
    let vendingPins: J5VendingPins | undefined;
    let posPins: J5PosPins | undefined;
    const slotCount = config.vending?.slotCount ?? 8;
    if (config.io.kind === 'virtual') {
      const { VirtualIo } = await import('../simulators/virtual-io/virtual-io.ts');
      const sims = await import('../simulators/virtual-io/sensor-sims.ts');
      const io = new VirtualIo();
      sim.io = io;
      board = await openJ5Board({ io });
      gatePins = VIRTUAL_PINS.gate;
      vendingPins = { motorPins: Array.from({ length: slotCount }, (_, i) => VIRTUAL_PINS.vendingFirstMotorPin + i), drop: { pin: VIRTUAL_PINS.vendingDropPin, activeLevel: 1 } };
      posPins = VIRTUAL_PINS.pos;
      if (config.kind === 'gate') {
        const walker = sims.attachGateWalker(io, { barrierPin: gatePins.barrier.pin, isOpenValue: (w) => w.value === 1, beamPin: gatePins.beam.pin, blockedLevel: gatePins.beam.blockedLevel });
        sim.walker = walker;
        closers.push(() => walker.detach());
      }
      if (config.kind === 'vending') {
        const mechanics = sims.attachVendingMechanics(io, { motorPins: vendingPins.motorPins, dropPin: vendingPins.drop.pin, activeLevel: 1 });
        sim.mechanics = mechanics;
        closers.push(() => mechanics.detach());
      }
    } else {
      let io: unknown;
      const IoPlugin = await loadIoPlugin(config, options.resolveIoPlugin ? { resolve: options.resolveIoPlugin } : {});
      if (IoPlugin) {
        try {
          io = new IoPlugin();
        } catch (err) {
          // Loaded and checked (root included) by checkTerminalConfig before; the import is cached.
      // The plugin's own start (its GPIO library) failed: the device's fault, as an unanswering board's.
          throw new HardwareError('ACTUATOR_NOT_READY', `IO plugin "${config.io.ioPlugin}" failed to start`, { cause: err });
        }
      }
      board = await openJ5Board({ ...(io !== undefined ? { io } : {}), ...(config.io.port !== undefined ? { port: config.io.port } : {}) });
      gatePins = config.io.gate;
      vendingPins = config.io.vending;
      posPins = config.io.pos ? { ...config.io.pos } : undefined;
    }
    const devices: TerminalDevices = {};

    // ---- receipt printer (ESC/POS) ----
    // Without one the runtime's slips go to its 'print' listeners (keypad console, simulators) and the log.
    if (config.printer !== undefined) {
      const { path } = config.printer;
      const receiptPrinter =
        printerKind(config.printer) === 'device'
          ? await DeviceReceiptPrinter.open({ path })
          : await SerialReceiptPrinter.open({ path, ...(config.printer.baudRate !== undefined ? { baudRate: config.printer.baudRate } : {}) });
      const slips = slipPrinter(receiptPrinter, log.child({ printerPath: path }));
      devices.print = (lines) => slips.print(lines);
      closers.push(() => slips.close());
    }

    if (config.kind === 'gate' && gatePins) devices.gate = createJ5Gate(board, gatePins, { passageTimeoutMs: config.gate?.passageTimeoutMs ?? 8000, closeDelayMs: config.gate?.closeDelayMs ?? 300 });
    if (config.kind === 'vending' && vendingPins) devices.vending = createJ5Vending(board, vendingPins, config.vending?.dropTimeoutMs ?? 4000);
    if (config.kind === 'pos' && posPins) {
      // A real POS shows its line on the console (or an LCD behind the same interface); a virtual
      // one keeps quiet — the runtime's 'display' events carry the same text.
      const display = config.io.kind === 'virtual' ? { show: () => undefined } : new ConsoleDisplay(process.stdout, `[${config.terminalId}] `);
      devices.pos = createJ5Pos(board, posPins, display);
    }
    closers.push(async () => {
      await devices.gate?.close();
      await devices.vending?.close();
      await devices.pos?.close();
    });
    return { reader, devices, sim, board, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface SlipPrinter {
  /**
   * Hands a slip to the printer; never throws. Resolves once it is printed (at once, or later as a
   * REPRINT); rejects when it will not be (dropped past maxUnprinted, or the printer closed first):
   * the runtime keeps the slip in its store until this resolves.
   */
  print(lines: string[]): Promise<void>;
  /** Slips not printed yet (their write failed), oldest first. */
  readonly unprinted: ReadonlyArray<{ lines: readonly string[]; failedAtMs: number }>;
  /** Prints what is queued, logs what is still unprinted, closes the printer. */
  close(): Promise<void>;
}

/** How long unprinted slips wait before they are tried again without a new slip to carry them. */
export const SLIP_RETRY_MS = 30_000;
/** Unprinted slips kept in memory at most; beyond it the oldest is dropped (logged at error with its lines). */
export const MAX_UNPRINTED_SLIPS = 32;

/**
 * The runtime's `devices.print` on a ReceiptPrinter. A slip whose write fails (PRINTER_WRITE_FAILED:
 * unplugged, out of paper on usblp, a timeout) is logged at error with its lines (`receipt`) and
 * kept here, then printed again, marked REPRINT with the time it failed, before the next slip or
 * after `retryMs`, once the printer takes slips again. Each slip's promise says when it is printed
 * (or given up): the runtime keeps the slip in its store until then, for the next start.
 */
export function slipPrinter(
  printer: ReceiptPrinter,
  log: Logger,
  options: { retryMs?: number; maxUnprinted?: number; now?: () => number } = {},
): SlipPrinter {
  const retryMs = options.retryMs ?? SLIP_RETRY_MS;
  const maxUnprinted = options.maxUnprinted ?? MAX_UNPRINTED_SLIPS;
  const now = options.now ?? Date.now;
  type Job = { lines: readonly string[]; printed: () => void; given: (err: unknown) => void };
  type Unprinted = { lines: readonly string[]; failedAtMs: number; printed: () => void; given: (err: unknown) => void };
  const unprinted: Unprinted[] = [];
  let queue: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const errFields = (err: unknown): Record<string, unknown> => ({ code: isHardwareError(err) ? err.code : 'PRINTER_WRITE_FAILED', err });
  const keep = (slip: Job, err: unknown): void => {
    unprinted.push({ lines: slip.lines, failedAtMs: now(), printed: slip.printed, given: slip.given });
    log.error({ ...errFields(err), receipt: slip.lines, unprinted: unprinted.length }, 'slip not printed: kept, printed again (REPRINT) once the printer takes slips');
    while (unprinted.length > maxUnprinted) {
      const dropped = unprinted.shift()!;
      log.error({ code: 'PRINTER_WRITE_FAILED', receipt: dropped.lines, failedAtMs: dropped.failedAtMs }, `slip dropped unprinted: more than ${maxUnprinted} waiting`);
      dropped.given(new HardwareError('PRINTER_WRITE_FAILED', `more than ${maxUnprinted} slips waiting for the printer`));
    }
    schedule();
  };
  const schedule = (): void => {
    if (closed || timer !== undefined || unprinted.length === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      enqueue(undefined);
    }, retryMs);
    timer.unref();
  };
  /** Unprinted slips first, oldest first; false when the printer still fails (the rest stay kept). */
  const reprint = async (): Promise<boolean> => {
    while (unprinted.length > 0) {
      const slip = unprinted[0]!;
      const stamp = new Date(slip.failedAtMs).toISOString().slice(0, 16).replace('T', ' ');
      try {
        await printer.print([`REPRINT ${stamp} UTC`, ...slip.lines]);
      } catch (err) {
        log.warn({ ...errFields(err), unprinted: unprinted.length }, 'printer still failing: unprinted slips kept');
        return false;
      }
      unprinted.shift();
      slip.printed();
      log.info({ receipt: slip.lines, failedAtMs: slip.failedAtMs }, 'unprinted slip printed (REPRINT)');
    }
    return true;
  };
  const enqueue = (slip: Job | undefined): void => {
    queue = queue.then(async () => {
      const ok = await reprint();
      if (slip === undefined) return;
      if (!ok) return keep(slip, new HardwareError('PRINTER_WRITE_FAILED', 'the printer failed the slips before this one'));
      try {
        await printer.print(slip.lines);
        slip.printed();
      } catch (err) {
        keep(slip, err);
      }
    }).finally(schedule);
  };

  return {
    print(lines) {
      if (closed) {
        log.error({ code: 'PRINTER_CLOSED', receipt: lines }, 'slip after the printer was closed: not printed');
        return Promise.reject(new HardwareError('PRINTER_CLOSED', 'the printer was closed'));
      }
      return new Promise<void>((printed, given) => enqueue({ lines: [...lines], printed, given }));
    },
    unprinted,
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await queue;
      if (unprinted.length > 0) log.error({ code: 'PRINTER_WRITE_FAILED', slips: unprinted.map((s) => s.lines) }, `${unprinted.length} slip(s) not printed: kept in the store for the next start`);
      for (const slip of unprinted.splice(0)) slip.given(new HardwareError('PRINTER_CLOSED', 'the printer was closed first'));
      await printer.close();
    },
  };
}

/**
 * An unplugged reader leaves the kiosk showing "tap your wallet" while nothing can be read: say so
 * in the log. The driver reconnects on its own ('connected' after open() is always a reconnect).
 */
function logReaderLink(reader: Pn532NfcReader, log: Logger): void {
  reader.driver.on('disconnected', (cause: unknown) => log.error({ err: cause }, 'NFC reader disconnected; taps cannot be read, reconnecting in the background'));
  reader.driver.on('connected', () => log.info('NFC reader reconnected'));
}
