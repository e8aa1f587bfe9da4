// POS: status LEDs, buzzer and a one-line display for amount and result (seed 004 claims 8–9).

export type PosStatus = 'idle' | 'waiting-for-card' | 'busy' | 'approved' | 'declined' | 'error';
export type BeepPattern = 'tap' | 'ok' | 'error';

export interface Pos {
  show(line: string): Promise<void>;
  setStatus(status: PosStatus): Promise<void>;
  beep(pattern: BeepPattern): Promise<void>;
  readonly status: PosStatus;
  readonly line: string;
  close(): Promise<void>;
}

/** A one-line display: console, LCD, or memory. */
export interface DisplayLine {
  show(text: string): void;
}

export interface PosHardware {
  setLed(led: 'green' | 'yellow' | 'red', on: boolean): void;
  setBuzzer(on: boolean): void;
  readonly display: DisplayLine;
  dispose(): Promise<void>;
}

export const DISPLAY_WIDTH = 32;

/** Prints the display line to a stream (stdout by default), one line per change. */
export class ConsoleDisplay implements DisplayLine {
  constructor(private readonly out: { write(text: string): unknown } = process.stdout, private readonly prefix = '[pos] ') {}
  show(text: string): void {
    this.out.write(`${this.prefix}${text}\n`);
  }
}

const LEDS: Record<PosStatus, ReadonlyArray<'green' | 'yellow' | 'red'>> = {
  idle: [],
  'waiting-for-card': ['yellow'],
  busy: ['yellow'],
  approved: ['green'],
  declined: ['red'],
  error: ['red', 'yellow'],
};

const BEEPS: Record<BeepPattern, readonly number[]> = {
  // on, off, on, ... in ms
  tap: [60],
  ok: [120],
  error: [150, 80, 150, 80, 150],
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class PosController implements Pos {
  private statusValue: PosStatus = 'idle';
  private lineValue = '';

  constructor(private readonly hw: PosHardware) {
    for (const led of ['green', 'yellow', 'red'] as const) hw.setLed(led, false);
  }

  get status(): PosStatus {
    return this.statusValue;
  }

  get line(): string {
    return this.lineValue;
  }

  async show(line: string): Promise<void> {
    // A display line is bounded: one row, printable characters only.
    const clean = Array.from(line, (ch) => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? ' ' : ch)).join('').slice(0, DISPLAY_WIDTH);
    this.lineValue = clean;
    this.hw.display.show(clean);
  }

  async setStatus(status: PosStatus): Promise<void> {
    this.statusValue = status;
    const on = LEDS[status];
    for (const led of ['green', 'yellow', 'red'] as const) this.hw.setLed(led, on.includes(led));
  }

  async beep(pattern: BeepPattern): Promise<void> {
    const steps = BEEPS[pattern];
    for (let i = 0; i < steps.length; i++) {
      this.hw.setBuzzer(i % 2 === 0);
      await sleep(steps[i]!);
    }
    this.hw.setBuzzer(false);
  }

  async close(): Promise<void> {
    await this.hw.dispose();
  }
}
