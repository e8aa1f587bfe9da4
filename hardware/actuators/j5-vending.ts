// VendingHardware on a johnny-five board: one relay (motor) per slot, a drop-sensor input.
import five from 'johnny-five';
import type { Relay } from 'johnny-five';
import { VendingController, type Vending, type VendingHardware } from './vending.ts';
import type { HardwareLink } from './board-link.ts';
import type { J5Board } from './j5-board.ts';

/** The part of the IO plugin surface used for the drop sensor. */
type DigitalInputIo = {
  MODES: { INPUT: number };
  pinMode(pin: number, mode: number): void;
  digitalRead(pin: number, callback: (value: number) => void): void;
};

export type J5VendingPins = {
  /** One motor relay per slot, slot i on motorPins[i]. */
  motorPins: readonly number[];
  /**
   * Drop sensor (IR curtain) input; `activeLevel` is the level while an article crosses it.
   * `stuckAfterMs` (default DROP_BEAM_STUCK_MS): blocked longer than this, the beam is stuck.
   */
  drop: { pin: number; activeLevel: 0 | 1; stuckAfterMs?: number };
};

/**
 * An article crossing the drop beam blocks it for tens of milliseconds; blocked for longer,
 * something sits in it (an article caught in the chute, dirt, a dead sensor) and no drop can be
 * seen. A beam blocked for less is an article falling (the previous sale's, a customer quick on
 * the keypad): not a reason to refuse a sale or fail a paid vend.
 */
export const DROP_BEAM_STUCK_MS = 1000;

export class J5VendingHardware implements VendingHardware {
  private readonly motors: Relay[];
  private disposed = false;
  private readonly listeners = new Set<() => void>();
  /** The drop sensor's last level; undefined until the board's first report. */
  private dropLevel: number | undefined;
  private readonly activeLevel: 0 | 1;
  private readonly stuckAfterMs: number;
  /** When the beam last went from clear to blocked (performance.now()). */
  private blockedSinceMs = 0;
  readonly link: HardwareLink;

  constructor(board: J5Board, pins: J5VendingPins) {
    this.link = board;
    this.activeLevel = pins.drop.activeLevel;
    this.stuckAfterMs = pins.drop.stuckAfterMs ?? DROP_BEAM_STUCK_MS;
    if (pins.motorPins.length === 0) throw new RangeError('pins.motorPins must name at least one slot');
    this.motors = pins.motorPins.map((pin) => new five.Relay({ pin, board, type: 'NO' }));
    // The drop sensor pulse can be a few ms long: johnny-five's Button debounces (7 ms) and Pin
    // polls (20 ms), both can miss it, so read every report of the IO plugin and catch the edge.
    const io = board.io as DigitalInputIo;
    io.pinMode(pins.drop.pin, io.MODES.INPUT);
    io.digitalRead(pins.drop.pin, (value) => {
      const last = this.dropLevel;
      const active = value === pins.drop.activeLevel;
      if (active && last !== pins.drop.activeLevel) this.blockedSinceMs = performance.now();
      if (active && last !== undefined && last !== pins.drop.activeLevel && !this.disposed) {
        for (const l of [...this.listeners]) l();
      }
      this.dropLevel = value;
    });
  }

  get slotCount(): number {
    return this.motors.length;
  }

  dropSensorClear(): boolean {
    // A lost board's last reading is stale: the beam may be blocked by now.
    if (this.link.lost !== undefined || this.dropLevel === undefined) return false;
    return this.dropLevel !== this.activeLevel || performance.now() - this.blockedSinceMs < this.stuckAfterMs;
  }

  setMotor(slot: number, on: boolean): void {
    const relay = this.motors[slot];
    if (relay === undefined) throw new RangeError(`no motor for slot ${slot}`);
    // A write on a lost link would wait for ever on the closed port: nothing can be switched now.
    if (this.link.lost !== undefined) return;
    if (on) relay.close();
    else relay.open();
  }

  onDrop(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.listeners.clear();
    for (let slot = 0; slot < this.motors.length; slot++) this.setMotor(slot, false);
  }
}

export function createJ5Vending(board: J5Board, pins: J5VendingPins, dispenseTimeoutMs?: number): Vending {
  return new VendingController(new J5VendingHardware(board, pins), dispenseTimeoutMs);
}
