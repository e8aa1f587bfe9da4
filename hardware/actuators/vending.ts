// Vending: one motor/relay per slot and a drop sensor (seed 004 claim 10; MDB vend success/failure).
import { HardwareError } from '../errors.ts';
import type { HardwareLink } from './board-link.ts';

export type DispenseResult =
  | { kind: 'dispensed'; slot: number; dropMs: number }
  /** No article fell within the timeout: the sale must be refunded (failed dispense). */
  | { kind: 'failed'; slot: number; reason: 'no-drop' }
  /** The drop sensor did not read clear, so a drop could not be seen: nothing ran; refund it. */
  | { kind: 'failed'; slot: number; reason: 'drop-sensor-blocked'; code: 'DROP_SENSOR_BLOCKED' };

export interface Vending {
  /** Slots are 0..slotCount-1; a dispense on any other is rejected with VENDING_SLOT_UNKNOWN. */
  readonly slotCount: number;
  /**
   * Run the slot's motor until the drop sensor fires or the timeout passes. One at a time. Never
   * throws synchronously: an unknown slot or a lost board link is a rejection (HardwareError).
   */
  dispense(slot: number, options?: { timeoutMs?: number }): Promise<DispenseResult>;
  /**
   * Whether a dispense could see its drop now: the drop sensor reads clear and the board link is
   * up (true for hardware with no sensor level to read). Asked before a sale is charged.
   */
  ready(): boolean;
  close(): Promise<void>;
}

export interface VendingHardware {
  readonly slotCount: number;
  setMotor(slot: number, on: boolean): void;
  /** Subscribe to drop-sensor pulses (an article crossed the drop beam). */
  onDrop(listener: () => void): () => void;
  /**
   * True while the drop sensor can see a drop: its last reading is clear, or blocked only as long
   * as a falling article blocks it (false once stuck blocked, and before its first reading).
   * Hardware with no sensor level to read (the in-memory simulator) omits it.
   */
  dropSensorClear?(): boolean;
  /** The board link, when the hardware has one that can be lost. */
  readonly link?: HardwareLink;
  dispose(): Promise<void>;
}

export const DEFAULT_DISPENSE_TIMEOUT_MS = 4000;

export class VendingController implements Vending {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly hw: VendingHardware, private readonly defaultTimeoutMs = DEFAULT_DISPENSE_TIMEOUT_MS) {
    for (let s = 0; s < hw.slotCount; s++) hw.setMotor(s, false);
  }

  get slotCount(): number {
    return this.hw.slotCount;
  }

  ready(): boolean {
    return this.hw.link?.lost === undefined && (this.hw.dropSensorClear?.() ?? true);
  }

  dispense(slot: number, options: { timeoutMs?: number } = {}): Promise<DispenseResult> {
    // A rejection, not a throw: the caller (the runtime) turns it into a failed, refunded sale.
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.hw.slotCount) {
      return Promise.reject(new HardwareError('VENDING_SLOT_UNKNOWN', `Vending.dispense: slot must be 0..${this.hw.slotCount - 1}, got ${slot}`));
    }
    const run = this.queue.then(() => this.runMotor(slot, options.timeoutMs ?? this.defaultTimeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.hw.dispose();
  }

  private runMotor(slot: number, timeoutMs: number): Promise<DispenseResult> {
    const hw = this.hw;
    const lost = hw.link?.lost;
    if (lost !== undefined) return Promise.reject(lost);
    // A beam that is already blocked (an article stuck in the chute, dirt, a dead sensor) would
    // hide the drop: the motor would run blind. Refuse before anything turns; the sale is refunded.
    if (hw.dropSensorClear !== undefined && !hw.dropSensorClear()) {
      return Promise.resolve({ kind: 'failed', slot, reason: 'drop-sensor-blocked', code: 'DROP_SENSOR_BLOCKED' });
    }
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const offDrop = hw.onDrop(() => finish(true));
      // A board gone mid-dispense can neither stop the motor nor see the drop: say so at once.
      const offLost = hw.link?.onLost((err) => finish(err));
      const timer = setTimeout(() => finish(false), timeoutMs);
      hw.setMotor(slot, true);
      function finish(outcome: boolean | HardwareError): void {
        clearTimeout(timer);
        offDrop();
        offLost?.();
        hw.setMotor(slot, false);
        if (outcome instanceof HardwareError) reject(outcome);
        else resolve(outcome ? { kind: 'dispensed', slot, dropMs: Math.round(performance.now() - t0) } : { kind: 'failed', slot, reason: 'no-drop' });
      }
    });
  }
}
