// Gate: barrier + passage beam + entry/exit LEDs + buzzer (seed 004 claim 11 entrance-exit control).
// The logic lives here once; GateHardware is the thin part a board (johnny-five) or a simulator provides.
import { HardwareError } from '../errors.ts';
import type { HardwareLink } from './board-link.ts';

export type GateDirection = 'entry' | 'exit';

export type PassageResult =
  /** Someone went through: the beam was blocked and cleared again. */
  | { kind: 'passed'; direction: GateDirection; openMs: number }
  /** Nobody came within the passage timeout; the gate closed again. */
  | { kind: 'timeout'; direction: GateDirection; openMs: number };

export interface AdmitOptions {
  direction?: GateDirection;
  passageTimeoutMs?: number;
  /**
   * Called once, when someone first blocks the beam: the passage is then certain (the barrier
   * waits for them however long they stay), only its end is not. Whoever paid for it has passed.
   */
  onEntered?: () => void;
}

export interface Gate {
  /**
   * Open for one passage, then close: after the beam was blocked and cleared, or after the
   * passage timeout — never while the beam is blocked (it waits for the beam to clear).
   */
  admit(options?: AdmitOptions): Promise<PassageResult>;
  /** Refusal feedback: red/exit LED blink and a long beep; the barrier stays closed. */
  deny(): Promise<void>;
  readonly isOpen: boolean;
  readonly beamBlocked: boolean;
  /**
   * Fail-secure: the barrier is closed (even mid-passage; a passage in progress ends) and the
   * outputs are off, since a Firmata board keeps its pins after the host has gone.
   */
  close(): Promise<void>;
}

/** What a board must offer for a gate. All calls are fire-and-forget digital outputs. */
export interface GateHardware {
  setBarrier(open: boolean): void;
  setLed(led: GateDirection | 'denied', on: boolean): void;
  setBuzzer(on: boolean): void;
  beamBlocked(): boolean;
  /** Subscribe to beam changes; returns an unsubscribe function. */
  onBeamChange(listener: (blocked: boolean) => void): () => void;
  /** The board link, when the hardware has one that can be lost. */
  readonly link?: HardwareLink;
  dispose(): Promise<void>;
}

export type GateTiming = {
  passageTimeoutMs: number;
  /** Keep open this long after the beam cleared, so the person is fully through. */
  closeDelayMs: number;
  beepMs: number;
  denyMs: number;
};

export const DEFAULT_GATE_TIMING: GateTiming = { passageTimeoutMs: 8000, closeDelayMs: 300, beepMs: 80, denyMs: 600 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class GateController implements Gate {
  private openFlag = false;
  private busy = false;
  private closed = false;
  /** Wakes a passage waiting on the beam when the gate is closed. */
  private readonly onClose = new Set<() => void>();
  private readonly timing: GateTiming;

  constructor(private readonly hw: GateHardware, timing: Partial<GateTiming> = {}) {
    this.timing = { ...DEFAULT_GATE_TIMING, ...timing };
    hw.setBarrier(false);
    // A lost board reports no beam any more: wake a passage waiting on it (admit then rejects).
    hw.link?.onLost(() => {
      for (const wake of [...this.onClose]) wake();
    });
  }

  get isOpen(): boolean {
    return this.openFlag;
  }

  get beamBlocked(): boolean {
    return this.hw.beamBlocked();
  }

  async admit(options: AdmitOptions = {}): Promise<PassageResult> {
    if (this.closed) throw new HardwareError('ACTUATOR_CLOSED', 'Gate.admit: the gate was closed');
    if (this.busy) throw new HardwareError('ACTUATOR_BUSY', 'Gate.admit: a passage is already in progress');
    this.throwIfLost();
    this.busy = true;
    const direction = options.direction ?? 'entry';
    const timeoutMs = options.passageTimeoutMs ?? this.timing.passageTimeoutMs;
    const t0 = performance.now();
    try {
      this.openFlag = true;
      this.hw.setBarrier(true);
      this.hw.setLed(direction, true);
      void this.beep(this.timing.beepMs);
      let entered = false;
      const enter = () => {
        if (entered) return;
        entered = true;
        options.onEntered?.();
      };
      if (this.hw.beamBlocked() || (await this.waitBeam(true, timeoutMs))) enter();
      this.throwIfLost();
      // Never close on a person: wait until the beam stayed clear for the whole close delay. The
      // barrier is still open meanwhile, so someone who steps in now goes through too.
      while (!this.closed) {
        if (this.hw.beamBlocked()) {
          enter();
          await this.waitBeam(false, Infinity);
          this.throwIfLost();
          if (this.closed) break;
        }
        const blockedAgain = await this.waitBeam(true, this.timing.closeDelayMs);
        this.throwIfLost();
        if (blockedAgain) enter();
        if (!blockedAgain && !this.hw.beamBlocked()) break;
      }
      this.hw.setBarrier(false);
      this.openFlag = false;
      this.hw.setLed(direction, false);
      const openMs = Math.round(performance.now() - t0);
      return entered ? { kind: 'passed', direction, openMs } : { kind: 'timeout', direction, openMs };
    } finally {
      this.busy = false;
    }
  }

  async deny(): Promise<void> {
    this.hw.setLed('denied', true);
    await this.beep(this.timing.denyMs);
    this.hw.setLed('denied', false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A board keeps its output pins after the host exits (stopped service, crash loop): leave the
    // barrier closed, never open. This overrides "never close on a person": a stop cannot wait.
    this.hw.setBarrier(false);
    this.openFlag = false;
    for (const led of ['entry', 'exit', 'denied'] as const) this.hw.setLed(led, false);
    this.hw.setBuzzer(false);
    for (const wake of [...this.onClose]) wake();
    await this.hw.dispose();
  }

  private async beep(ms: number): Promise<void> {
    this.hw.setBuzzer(true);
    await sleep(ms);
    this.hw.setBuzzer(false);
  }

  /** A passage cannot be seen through on a lost board: its outcome is unknown, not 'timeout'. */
  private throwIfLost(): void {
    const lost = this.hw.link?.lost;
    if (lost !== undefined) throw lost;
  }

  /** Resolve true when the beam reaches `blocked`, false after `timeoutMs` (or on close / a lost link). */
  private waitBeam(blocked: boolean, timeoutMs: number): Promise<boolean> {
    if (this.closed || this.hw.link?.lost !== undefined) return Promise.resolve(false);
    if (this.hw.beamBlocked() === blocked) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => finish(false), timeoutMs) : undefined;
      const off = this.hw.onBeamChange((now) => {
        if (now === blocked) finish(true);
      });
      const onClose = (): void => finish(false);
      this.onClose.add(onClose);
      const finish = (result: boolean): void => {
        if (timer !== undefined) clearTimeout(timer);
        off();
        this.onClose.delete(onClose);
        resolve(result);
      };
    });
  }
}
