// VendingHardware on a johnny-five board: one relay (motor) per slot, a drop-sensor input.
import five from 'johnny-five';
import type { Relay, Button } from 'johnny-five';
import { VendingController, type Vending, type VendingHardware } from './vending.ts';
import type { J5Board } from './j5-board.ts';

export type J5VendingPins = {
  /** One motor relay per slot, slot i on motorPins[i]. */
  motorPins: readonly number[];
  /** Drop sensor (IR curtain) input; `activeLevel` is the level while an article crosses it. */
  drop: { pin: number; activeLevel: 0 | 1 };
};

export class J5VendingHardware implements VendingHardware {
  private readonly motors: Relay[];
  private readonly drop: Button;
  private readonly listeners = new Set<() => void>();

  constructor(board: J5Board, pins: J5VendingPins) {
    if (pins.motorPins.length === 0) throw new RangeError('pins.motorPins must name at least one slot');
    this.motors = pins.motorPins.map((pin) => new five.Relay({ pin, board, type: 'NO' }));
    this.drop = new five.Button({ pin: pins.drop.pin, board, invert: pins.drop.activeLevel === 0 });
    this.drop.on('down', () => {
      for (const l of [...this.listeners]) l();
    });
  }

  get slotCount(): number {
    return this.motors.length;
  }

  setMotor(slot: number, on: boolean): void {
    const relay = this.motors[slot];
    if (relay === undefined) throw new RangeError(`no motor for slot ${slot}`);
    if (on) relay.close();
    else relay.open();
  }

  onDrop(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.listeners.clear();
    this.drop.removeAllListeners();
    for (const m of this.motors) m.open();
  }
}

export function createJ5Vending(board: J5Board, pins: J5VendingPins, dispenseTimeoutMs?: number): Vending {
  return new VendingController(new J5VendingHardware(board, pins), dispenseTimeoutMs);
}
