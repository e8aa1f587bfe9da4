// A Firmata board (StandardFirmata 2.5 on an UNO-like pin map) on one end of a pseudo-terminal,
// so johnny-five's default path — Firmata over a serial port — runs for real in tests. Pin state
// lives in a VirtualIo, so the same sensor simulations (GateWalker, VendingMechanics) apply.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { openPtyPair, type PtyPair } from '../pn532-emulator/pty-pair.ts';
import { MODES, VirtualIo } from './virtual-io.ts';

// Firmata protocol bytes (firmata.org protocol.md)
const DIGITAL_MESSAGE = 0x90;
const ANALOG_MESSAGE = 0xe0;
const REPORT_ANALOG = 0xc0;
const REPORT_DIGITAL = 0xd0;
const START_SYSEX = 0xf0;
const END_SYSEX = 0xf7;
const PIN_MODE = 0xf4;
const SET_DIGITAL_PIN_VALUE = 0xf5;
const REPORT_VERSION = 0xf9;
const SYSTEM_RESET = 0xff;
const QUERY_FIRMWARE = 0x79;
const CAPABILITY_QUERY = 0x6b;
const CAPABILITY_RESPONSE = 0x6c;
const ANALOG_MAPPING_QUERY = 0x69;
const ANALOG_MAPPING_RESPONSE = 0x6a;
const SERVO_CONFIG = 0x70;
const EXTENDED_ANALOG = 0x6f;

const PIN_COUNT = 20;
const PWM_PINS = new Set([3, 5, 6, 9, 10, 11]);
const FIRST_ANALOG_PIN = 14;

export class FirmataBoardEmulator {
  /** The board's pins: observe writes and drive inputs here. */
  readonly io = new VirtualIo({ pinCount: PIN_COUNT, readyDelayMs: 0 });
  private port: SerialPort | undefined;
  private rx: number[] = [];
  private handshakeTimer: ReturnType<typeof setInterval> | undefined;
  private readonly reportedPorts = new Set<number>();

  constructor(readonly path: string) {
    // Inputs default high-impedance low; reports go out on change for enabled ports.
    for (let pin = 2; pin < PIN_COUNT; pin++) {
      this.io.digitalRead(pin, () => this.reportPortOf(pin));
    }
  }

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 57_600, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    port.on('data', (d: Buffer) => this.onData(d));
    port.on('error', () => undefined);
    this.port = port;
    // An Arduino announces itself after the reset that opening the port causes; repeat until
    // the host starts its handshake (it may open its end after us).
    const announce = (): void => {
      this.send([REPORT_VERSION, 2, 5]);
      this.sendFirmware();
    };
    announce();
    this.handshakeTimer = setInterval(announce, 100);
  }

  async close(): Promise<void> {
    if (this.handshakeTimer) clearInterval(this.handshakeTimer);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private send(bytes: number[]): void {
    if (this.port?.isOpen) this.port.write(Buffer.from(bytes));
  }

  private sendFirmware(): void {
    const name = Buffer.from('VirtualFirmata.ino');
    const body: number[] = [];
    for (const b of name) body.push(b & 0x7f, (b >> 7) & 0x7f);
    this.send([START_SYSEX, QUERY_FIRMWARE, 2, 5, ...body, END_SYSEX]);
  }

  private onData(chunk: Buffer): void {
    for (const b of chunk) {
      this.rx.push(b);
      this.tryParse();
    }
    if (this.rx.length > 1024) this.rx = []; // bound: garbage never grows memory
  }

  private tryParse(): void {
    const first = this.rx[0]!;
    if (first < 0x80) {
      this.rx = []; // data byte without a command: out of sync
      return;
    }
    if (first === START_SYSEX) {
      if (this.rx[this.rx.length - 1] === END_SYSEX) {
        this.onSysex(this.rx.slice(1, -1));
        this.rx = [];
      }
      return;
    }
    const cmd = first < 0xf0 ? first & 0xf0 : first;
    const length = cmd === REPORT_ANALOG || cmd === REPORT_DIGITAL ? 2 : cmd === REPORT_VERSION || cmd === SYSTEM_RESET ? 1 : 3;
    if (this.rx.length < length) return;
    const [a = 0, b = 0, c = 0] = this.rx;
    this.rx = [];
    switch (cmd) {
      case DIGITAL_MESSAGE: {
        const portNo = a & 0x0f;
        const value = b | (c << 7);
        for (let i = 0; i < 8; i++) {
          const pin = portNo * 8 + i;
          if (pin < PIN_COUNT && this.io.pins[pin]!.mode === MODES.OUTPUT) this.io.digitalWrite(pin, (value >> i) & 1);
        }
        return;
      }
      case ANALOG_MESSAGE:
        this.analogOrServo(a & 0x0f, b | (c << 7));
        return;
      case REPORT_DIGITAL:
        if (b) {
          this.reportedPorts.add(a & 0x0f);
          this.reportPort(a & 0x0f); // StandardFirmata reports the port at once when enabled
        } else {
          this.reportedPorts.delete(a & 0x0f);
        }
        return;
      case PIN_MODE:
        if (b < PIN_COUNT) this.io.pinMode(b, c);
        return;
      case SET_DIGITAL_PIN_VALUE:
        if (b < PIN_COUNT) this.io.digitalWrite(b, c);
        return;
      case REPORT_VERSION:
        this.send([REPORT_VERSION, 2, 5]);
        return;
      default:
        return; // REPORT_ANALOG, SYSTEM_RESET: nothing to simulate
    }
  }

  private onSysex(body: number[]): void {
    const [cmd, ...data] = body;
    switch (cmd) {
      case QUERY_FIRMWARE:
        this.sendFirmware();
        return;
      case CAPABILITY_QUERY: {
        if (this.handshakeTimer) clearInterval(this.handshakeTimer);
        const out: number[] = [START_SYSEX, CAPABILITY_RESPONSE];
        for (let pin = 0; pin < PIN_COUNT; pin++) {
          if (pin >= 2) {
            out.push(MODES.INPUT, 1, MODES.OUTPUT, 1, MODES.SERVO, 14);
            if (PWM_PINS.has(pin)) out.push(MODES.PWM, 8);
            if (pin >= FIRST_ANALOG_PIN) out.push(MODES.ANALOG, 10);
          }
          out.push(0x7f);
        }
        out.push(END_SYSEX);
        this.send(out);
        return;
      }
      case ANALOG_MAPPING_QUERY: {
        const map = Array.from({ length: PIN_COUNT }, (_, pin) => (pin >= FIRST_ANALOG_PIN ? pin - FIRST_ANALOG_PIN : 0x7f));
        this.send([START_SYSEX, ANALOG_MAPPING_RESPONSE, ...map, END_SYSEX]);
        return;
      }
      case SERVO_CONFIG:
        if (data[0] !== undefined && data[0] < PIN_COUNT) this.io.servoConfig(data[0], 0, 0);
        return;
      case EXTENDED_ANALOG: {
        const [pin = 0, ...bytes] = data;
        const value = bytes.reduce((v, byte, i) => v | (byte << (7 * i)), 0);
        if (pin < PIN_COUNT) this.analogOrServo(pin, value);
        return;
      }
      default:
        return; // SAMPLING_INTERVAL and others: accepted, nothing to simulate
    }
  }

  private analogOrServo(pin: number, value: number): void {
    if (pin >= PIN_COUNT) return;
    if (this.io.pins[pin]!.mode === MODES.SERVO) this.io.servoWrite(pin, value);
    else this.io.analogWrite(pin, value);
  }

  private reportPortOf(pin: number): void {
    const portNo = pin >> 3;
    if (this.reportedPorts.has(portNo)) this.reportPort(portNo);
  }

  private reportPort(portNo: number): void {
    let value = 0;
    for (let i = 0; i < 8; i++) {
      const pin = portNo * 8 + i;
      if (pin < PIN_COUNT && this.io.pins[pin]!.mode === MODES.INPUT && this.io.value(pin)) value |= 1 << i;
    }
    this.send([DIGITAL_MESSAGE | portNo, value & 0x7f, (value >> 7) & 0x7f]);
  }
}

export type EmulatedFirmataBoard = {
  /** Serial path to give johnny-five: openJ5Board({ port: path }). */
  readonly path: string;
  readonly board: FirmataBoardEmulator;
  close(): Promise<void>;
};

/** A socat pty pair with a Firmata board emulator on the device end. */
export async function startEmulatedFirmataBoard(): Promise<EmulatedFirmataBoard> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-firmata-'));
  let pair: PtyPair | undefined;
  try {
    pair = await openPtyPair(join(dir, 'board-device'), join(dir, 'board-host'));
    const board = new FirmataBoardEmulator(pair.devicePath);
    await board.open();
    const p = pair;
    return {
      path: p.hostPath,
      board,
      async close() {
        await board.close();
        await p.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await pair?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
