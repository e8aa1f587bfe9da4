// In-memory actuator hardware: the same GateController / VendingController / PosController logic
// with no board at all. Used by simulated terminals and by the contract suites.
import { GateController, type GateHardware, type GateTiming } from '../../hardware/actuators/gate.ts';
import { PosController, type DisplayLine, type PosHardware } from '../../hardware/actuators/pos.ts';
import { VendingController, type VendingHardware } from '../../hardware/actuators/vending.ts';
import { GateWalker, VendingMechanics } from './sensor-sims.ts';

export class MemoryGateHardware implements GateHardware {
  barrierOpen = false;
  buzzerOn = false;
  readonly leds = { entry: false, exit: false, denied: false };
  /** Queue visitors here: each barrier opening plays the next one. */
  readonly walker: GateWalker;
  private blocked = false;
  private readonly listeners = new Set<(blocked: boolean) => void>();

  constructor() {
    this.walker = new GateWalker({ isBarrierOpenWrite: () => undefined, setBeam: (b) => this.setBeam(b) });
  }

  setBarrier(open: boolean): void {
    this.barrierOpen = open;
    this.walker.barrierChanged(open);
  }

  setLed(led: 'entry' | 'exit' | 'denied', on: boolean): void {
    this.leds[led] = on;
  }

  setBuzzer(on: boolean): void {
    this.buzzerOn = on;
  }

  beamBlocked(): boolean {
    return this.blocked;
  }

  onBeamChange(listener: (blocked: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drive the beam directly (a person, a bag, a stuck sensor). */
  setBeam(blocked: boolean): void {
    if (blocked === this.blocked) return;
    this.blocked = blocked;
    for (const l of [...this.listeners]) l(blocked);
  }

  async dispose(): Promise<void> {
    this.walker.stop();
    this.listeners.clear();
  }
}

export function createMemoryGate(timing: Partial<GateTiming> = {}): { gate: GateController; hardware: MemoryGateHardware } {
  const hardware = new MemoryGateHardware();
  return { gate: new GateController(hardware, timing), hardware };
}

export class MemoryVendingHardware implements VendingHardware {
  readonly motors: boolean[];
  /** Set per-slot behaviour: drops after N ms (default 40), jammed, or empty. */
  readonly mechanics: VendingMechanics;
  private readonly listeners = new Set<() => void>();

  constructor(readonly slotCount: number) {
    if (!Number.isInteger(slotCount) || slotCount < 1) throw new RangeError(`slotCount must be ≥ 1, got ${slotCount}`);
    this.motors = new Array<boolean>(slotCount).fill(false);
    this.mechanics = new VendingMechanics(() => {
      for (const l of [...this.listeners]) l();
    });
  }

  setMotor(slot: number, on: boolean): void {
    this.motors[slot] = on;
    this.mechanics.motorChanged(slot, on);
  }

  onDrop(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async dispose(): Promise<void> {
    this.mechanics.stop();
    this.listeners.clear();
  }
}

export function createMemoryVending(slotCount: number, dispenseTimeoutMs?: number): { vending: VendingController; hardware: MemoryVendingHardware } {
  const hardware = new MemoryVendingHardware(slotCount);
  return { vending: new VendingController(hardware, dispenseTimeoutMs), hardware };
}

export class MemoryDisplay implements DisplayLine {
  readonly lines: string[] = [];
  show(text: string): void {
    this.lines.push(text);
    if (this.lines.length > 1000) this.lines.shift();
  }
}

export class MemoryPosHardware implements PosHardware {
  readonly leds = { green: false, yellow: false, red: false };
  buzzerOn = false;
  /** Number of buzzer on-switches (one per beep pulse). */
  buzzerPulses = 0;
  constructor(readonly display: DisplayLine = new MemoryDisplay()) {}

  setLed(led: 'green' | 'yellow' | 'red', on: boolean): void {
    this.leds[led] = on;
  }

  setBuzzer(on: boolean): void {
    if (on && !this.buzzerOn) this.buzzerPulses++;
    this.buzzerOn = on;
  }

  async dispose(): Promise<void> {}
}

export function createMemoryPos(display?: DisplayLine): { pos: PosController; hardware: MemoryPosHardware } {
  const hardware = new MemoryPosHardware(display);
  return { pos: new PosController(hardware), hardware };
}
