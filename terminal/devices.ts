// Hardware chosen by config: a real PN532 on a serial path or the PN532 emulator on a pty; a
// johnny-five board (Firmata over serial, or an IO plugin such as raspi-io) or the virtual IO
// board. Simulator modules are imported only when the config asks for them.
import type { Logger } from 'pino';
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
import type { TerminalConfig } from './config.ts';
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
  close(): Promise<void>;
}

export async function openHardware(config: TerminalConfig, log: Logger): Promise<OpenedHardware> {
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
      if (config.io.ioPlugin) {
        const mod = (await import(config.io.ioPlugin)) as { default: new () => unknown };
        io = new mod.default();
      }
      board = await openJ5Board({ ...(io !== undefined ? { io } : {}), ...(config.io.port !== undefined ? { port: config.io.port } : {}) });
      gatePins = config.io.gate;
      vendingPins = config.io.vending;
      posPins = config.io.pos ? { ...config.io.pos } : undefined;
    }
    const devices: TerminalDevices = {};
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
    return { reader, devices, sim, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * An unplugged reader leaves the kiosk showing "tap your wallet" while nothing can be read: say so
 * in the log. The driver reconnects on its own ('connected' after open() is always a reconnect).
 */
function logReaderLink(reader: Pn532NfcReader, log: Logger): void {
  reader.driver.on('disconnected', (cause: unknown) => log.error({ err: cause }, 'NFC reader disconnected; taps cannot be read, reconnecting in the background'));
  reader.driver.on('connected', () => log.info('NFC reader reconnected'));
}
