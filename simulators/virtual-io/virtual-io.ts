// A virtual johnny-five IO plugin (the IO Plugin surface of johnny-five's Board: pins, MODES,
// pinMode, digitalWrite/Read, analogWrite/Read, servoWrite, 'connect'/'ready' events). It records
// every write with a timestamp and lets simulations drive input pins.
import { EventEmitter } from 'node:events';

export const MODES = { INPUT: 0x00, OUTPUT: 0x01, ANALOG: 0x02, PWM: 0x03, SERVO: 0x04 } as const;

export type PinWrite = { pin: number; kind: 'mode' | 'digital' | 'analog' | 'servo'; value: number; atMs: number };

type PinState = { supportedModes: number[]; mode: number; value: number; report: number; analogChannel: number };

export type VirtualIoOptions = {
  /** Digital pins 0..pinCount-1, all supporting INPUT, OUTPUT, PWM and SERVO. Default 20 (UNO-like). */
  pinCount?: number;
  /** Delay before 'ready' like a real board's handshake. */
  readyDelayMs?: number;
  /** Bound on recorded writes (oldest dropped). */
  maxRecordedWrites?: number;
};

export class VirtualIo extends EventEmitter {
  readonly name = 'VirtualIo';
  readonly MODES = MODES;
  readonly HIGH = 1;
  readonly LOW = 0;
  readonly RESOLUTION = { ADC: 1023, DAC: null, PWM: 255 };
  readonly defaultLed = 13;
  readonly analogPins: number[] = [];
  readonly pins: PinState[];
  isReady = false;
  /** Every output write, oldest first. */
  readonly writes: PinWrite[] = [];
  private readonly readers = new Map<number, Array<(value: number) => void>>();
  private readonly writeListeners = new Set<(w: PinWrite) => void>();
  private readonly maxRecordedWrites: number;
  private readonly t0 = performance.now();

  constructor(options: VirtualIoOptions = {}) {
    super();
    const count = options.pinCount ?? 20;
    this.maxRecordedWrites = options.maxRecordedWrites ?? 10_000;
    this.pins = Array.from({ length: count }, () => ({
      supportedModes: [MODES.INPUT, MODES.OUTPUT, MODES.PWM, MODES.SERVO],
      mode: MODES.OUTPUT,
      value: 0,
      report: 0,
      analogChannel: 127, // 127 = not an analog pin (Firmata convention)
    }));
    setTimeout(() => {
      this.isReady = true;
      this.emit('connect');
      this.emit('ready');
    }, options.readyDelayMs ?? 5);
  }

  // ---- IO plugin surface (called by johnny-five) ----

  pinMode(pin: number, mode: number): this {
    this.pin(pin).mode = mode;
    this.record(pin, 'mode', mode);
    return this;
  }

  digitalWrite(pin: number, value: number): this {
    const v = value ? 1 : 0;
    this.pin(pin).value = v;
    this.record(pin, 'digital', v);
    return this;
  }

  analogWrite(pin: number, value: number): this {
    this.pin(pin).value = value;
    this.record(pin, 'analog', value);
    return this;
  }

  pwmWrite(pin: number, value: number): this {
    return this.analogWrite(pin, value);
  }

  servoWrite(pin: number, value: number): this {
    this.pin(pin).value = value;
    this.record(pin, 'servo', value);
    return this;
  }

  servoConfig(pin: number, _min: number, _max: number): this {
    this.pin(pin).mode = MODES.SERVO;
    return this;
  }

  /** Firmata semantics: report the current value, then every change. */
  digitalRead(pin: number, callback: (value: number) => void): this {
    this.pin(pin).report = 1;
    const list = this.readers.get(pin) ?? [];
    list.push(callback);
    this.readers.set(pin, list);
    const value = this.pin(pin).value;
    setImmediate(() => callback(value));
    return this;
  }

  analogRead(pin: number, callback: (value: number) => void): this {
    return this.digitalRead(pin, callback);
  }

  reportDigitalPin(pin: number, value: number): this {
    this.pin(pin).report = value;
    return this;
  }

  setSamplingInterval(_ms: number): this {
    return this;
  }

  queryPinState(pin: number, callback: () => void): this {
    setImmediate(callback);
    void pin;
    return this;
  }

  // ---- simulation side ----

  /** Drive an input pin (a sensor): listeners see the change like a Firmata report. */
  setInput(pin: number, value: 0 | 1): void {
    const state = this.pin(pin);
    if (state.value === value) return;
    state.value = value;
    for (const cb of this.readers.get(pin) ?? []) cb(value);
  }

  /** Current level of a pin (output or input). */
  value(pin: number): number {
    return this.pin(pin).value;
  }

  /** Observe writes as they happen (used by the sensor simulations). */
  onWrite(listener: (w: PinWrite) => void): () => void {
    this.writeListeners.add(listener);
    return () => this.writeListeners.delete(listener);
  }

  writesTo(pin: number, kind?: PinWrite['kind']): PinWrite[] {
    return this.writes.filter((w) => w.pin === pin && (kind === undefined || w.kind === kind));
  }

  private pin(pin: number): PinState {
    const state = this.pins[pin];
    if (state === undefined) throw new RangeError(`VirtualIo: no pin ${pin}`);
    return state;
  }

  private record(pin: number, kind: PinWrite['kind'], value: number): void {
    const w: PinWrite = { pin, kind, value, atMs: performance.now() - this.t0 };
    this.writes.push(w);
    if (this.writes.length > this.maxRecordedWrites) this.writes.shift();
    for (const l of [...this.writeListeners]) l(w);
  }
}
