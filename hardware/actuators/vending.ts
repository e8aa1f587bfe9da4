// Vending: one motor/relay per slot and a drop sensor (seed 004 claim 10; MDB vend success/failure).

export type DispenseResult =
  | { kind: 'dispensed'; slot: number; dropMs: number }
  /** No article fell within the timeout: the sale must be refunded (failed dispense). */
  | { kind: 'failed'; slot: number; reason: 'no-drop' };

export interface Vending {
  readonly slotCount: number;
  /** Run the slot's motor until the drop sensor fires or the timeout passes. One at a time. */
  dispense(slot: number, options?: { timeoutMs?: number }): Promise<DispenseResult>;
  close(): Promise<void>;
}

export interface VendingHardware {
  readonly slotCount: number;
  setMotor(slot: number, on: boolean): void;
  /** Subscribe to drop-sensor pulses (an article crossed the drop beam). */
  onDrop(listener: () => void): () => void;
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

  dispense(slot: number, options: { timeoutMs?: number } = {}): Promise<DispenseResult> {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.hw.slotCount) throw new RangeError(`slot must be 0..${this.hw.slotCount - 1}, got ${slot}`);
    const run = this.queue.then(() => this.runMotor(slot, options.timeoutMs ?? this.defaultTimeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.hw.dispose();
  }

  private runMotor(slot: number, timeoutMs: number): Promise<DispenseResult> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const off = this.hw.onDrop(() => finish(true));
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.hw.setMotor(slot, true);
      const hw = this.hw;
      function finish(dropped: boolean): void {
        clearTimeout(timer);
        off();
        hw.setMotor(slot, false);
        resolve(dropped ? { kind: 'dispensed', slot, dropMs: Math.round(performance.now() - t0) } : { kind: 'failed', slot, reason: 'no-drop' });
      }
    });
  }
}
