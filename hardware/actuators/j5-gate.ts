// GateHardware on a johnny-five board: servo or relay barrier, beam-break input, LEDs, active buzzer.
import five from 'johnny-five';
import type { Servo, Relay, Button, Led } from 'johnny-five';
import { GateController, type Gate, type GateHardware, type GateTiming } from './gate.ts';
import type { J5Board } from './j5-board.ts';

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
  private readonly beam: Button;
  private readonly leds: Record<'entry' | 'exit' | 'denied', Led>;
  private readonly buzzer: Led;
  private readonly listeners = new Set<(blocked: boolean) => void>();

  constructor(board: J5Board, private readonly pins: J5GatePins) {
    const b = pins.barrier;
    if (b.kind === 'servo') this.servo = new five.Servo({ pin: b.pin, board, startAt: b.closedDeg });
    else this.relay = new five.Relay({ pin: b.pin, board, type: 'NO' });
    // A Button is johnny-five's debounced digital input; "down" = beam interrupted.
    this.beam = new five.Button({ pin: pins.beam.pin, board, invert: pins.beam.blockedLevel === 0 });
    this.beam.on('down', () => this.emit(true));
    this.beam.on('up', () => this.emit(false));
    this.leds = {
      entry: new five.Led({ pin: pins.entryLed, board }),
      exit: new five.Led({ pin: pins.exitLed, board }),
      denied: new five.Led({ pin: pins.deniedLed, board }),
    };
    this.buzzer = new five.Led({ pin: pins.buzzer, board });
  }

  setBarrier(open: boolean): void {
    const b = this.pins.barrier;
    if (b.kind === 'servo') this.servo?.to(open ? b.openDeg : b.closedDeg);
    else if (open) this.relay?.close(); // energize the NO relay: barrier motor opens
    else this.relay?.open();
  }

  setLed(led: 'entry' | 'exit' | 'denied', on: boolean): void {
    if (on) this.leds[led].on();
    else this.leds[led].off();
  }

  setBuzzer(on: boolean): void {
    if (on) this.buzzer.on();
    else this.buzzer.off();
  }

  beamBlocked(): boolean {
    return this.beam.isDown;
  }

  onBeamChange(listener: (blocked: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.listeners.clear();
    this.beam.removeAllListeners();
    for (const led of [...Object.values(this.leds), this.buzzer]) led.off();
  }

  private emit(blocked: boolean): void {
    for (const l of [...this.listeners]) l(blocked);
  }
}

export function createJ5Gate(board: J5Board, pins: J5GatePins, timing: Partial<GateTiming> = {}): Gate {
  return new GateController(new J5GateHardware(board, pins), timing);
}
