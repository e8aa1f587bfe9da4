// GateHardware on a johnny-five board: servo or relay barrier, beam-break input, LEDs, active buzzer.
import five from 'johnny-five';
import type { Servo, Relay, Led } from 'johnny-five';
import { GateController, type Gate, type GateHardware, type GateTiming } from './gate.ts';
import type { HardwareLink } from './board-link.ts';
import type { J5Board } from './j5-board.ts';

/** The part of the IO plugin surface used for the beam input. */
type DigitalInputIo = {
  MODES: { INPUT: number };
  pinMode(pin: number, mode: number): void;
  digitalRead(pin: number, callback: (value: number) => void): void;
};

export type J5GatePins = {
  barrier: { kind: 'servo'; pin: number; closedDeg: number; openDeg: number } | { kind: 'relay'; pin: number };
  /** Beam-break receiver input; `blockedLevel` is the pin level while the beam is interrupted. */
  beam: { pin: number; blockedLevel: 0 | 1 };
  entryLed: number;
  exitLed: number;
  deniedLed: number;
  buzzer: number;
};

export class J5GateHardware implements GateHardware {
  private readonly servo: Servo | undefined;
  private readonly relay: Relay | undefined;
  private blocked = false;
  private disposed = false;
  private readonly leds: Record<'entry' | 'exit' | 'denied', Led>;
  private readonly buzzer: Led;
  private readonly listeners = new Set<(blocked: boolean) => void>();
  readonly link: HardwareLink;

  constructor(board: J5Board, private readonly pins: J5GatePins) {
    this.link = board;
    const b = pins.barrier;
    if (b.kind === 'servo') this.servo = new five.Servo({ pin: b.pin, board, startAt: b.closedDeg });
    else this.relay = new five.Relay({ pin: b.pin, board, type: 'NO' });
    // Every report of the IO plugin, not johnny-five's Button: its 7 ms debounce drops a
    // blocked/clear pair that arrives in one serial chunk. The controller's close delay (beam clear
    // for closeDelayMs) is the debounce that matters here.
    const io = board.io as DigitalInputIo;
    io.pinMode(pins.beam.pin, io.MODES.INPUT);
    io.digitalRead(pins.beam.pin, (value) => {
      const blocked = value === pins.beam.blockedLevel;
      if (this.disposed || blocked === this.blocked) return;
      this.blocked = blocked;
      this.emit(blocked);
    });
    this.leds = {
      entry: new five.Led({ pin: pins.entryLed, board }),
      exit: new five.Led({ pin: pins.exitLed, board }),
      denied: new five.Led({ pin: pins.deniedLed, board }),
    };
    this.buzzer = new five.Led({ pin: pins.buzzer, board });
  }

  setBarrier(open: boolean): void {
    // Writes on a lost link would queue for ever on the closed port: nothing can be switched now.
    if (this.link.lost !== undefined) return;
    const b = this.pins.barrier;
    if (b.kind === 'servo') this.servo?.to(open ? b.openDeg : b.closedDeg);
    else if (open) this.relay?.close(); // energize the NO relay: barrier motor opens
    else this.relay?.open();
  }

  setLed(led: 'entry' | 'exit' | 'denied', on: boolean): void {
    if (this.link.lost !== undefined) return;
    if (on) this.leds[led].on();
    else this.leds[led].off();
  }

  setBuzzer(on: boolean): void {
    if (this.link.lost !== undefined) return;
    if (on) this.buzzer.on();
    else this.buzzer.off();
  }

  beamBlocked(): boolean {
    return this.blocked;
  }

  onBeamChange(listener: (blocked: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.listeners.clear();
    // Fail-secure: the board keeps its pins after the host exits; the barrier must be left closed.
    this.setBarrier(false);
    if (this.link.lost !== undefined) return;
    for (const led of [...Object.values(this.leds), this.buzzer]) led.off();
  }

  private emit(blocked: boolean): void {
    for (const l of [...this.listeners]) l(blocked);
  }
}

export function createJ5Gate(board: J5Board, pins: J5GatePins, timing: Partial<GateTiming> = {}): Gate {
  return new GateController(new J5GateHardware(board, pins), timing);
}
