// Physical behaviour around a virtual board: people walking through a gate, articles falling.
import type { PinWrite, VirtualIo } from './virtual-io.ts';

const later = (ms: number, fn: () => void): ReturnType<typeof setTimeout> => setTimeout(fn, ms);

/** What the next person does when the barrier opens. */
export type Visitor =
  | { kind: 'walk-through'; walkInMs: number; blockedMs: number }
  | { kind: 'nobody' }
  /** Steps into the beam and stays there for `blockedMs` (the gate must not close on them). */
  | { kind: 'linger'; walkInMs: number; blockedMs: number };

export type GateWalkerOptions = {
  isBarrierOpenWrite: (w: PinWrite) => boolean | undefined;
  setBeam: (blocked: boolean) => void;
};

/** Plays visitors: each time the barrier opens, the next queued visitor acts (default: nobody). */
export class GateWalker {
  private readonly visitors: Visitor[] = [];
  private timers: Array<ReturnType<typeof setTimeout>> = [];
  private barrierOpen = false;

  constructor(private readonly options: GateWalkerOptions) {}

  enqueue(visitor: Visitor): void {
    this.visitors.push(visitor);
  }

  /** Feed barrier state changes (from a pin write or a memory barrier). */
  barrierChanged(open: boolean): void {
    if (open === this.barrierOpen) return;
    this.barrierOpen = open;
    if (!open) return;
    const v = this.visitors.shift() ?? { kind: 'nobody' };
    if (v.kind === 'nobody') return;
    this.timers.push(later(v.walkInMs, () => this.options.setBeam(true)));
    this.timers.push(later(v.walkInMs + v.blockedMs, () => this.options.setBeam(false)));
  }

  onWrite(w: PinWrite): void {
    const open = this.options.isBarrierOpenWrite(w);
    if (open !== undefined) this.barrierChanged(open);
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}

/** Attach a GateWalker to a virtual board: watches the barrier pin, drives the beam pin. */
export function attachGateWalker(
  io: VirtualIo,
  pins: { barrierPin: number; isOpenValue: (w: PinWrite) => boolean; beamPin: number; blockedLevel: 0 | 1 },
): GateWalker & { detach(): void } {
  const walker = new GateWalker({
    isBarrierOpenWrite: (w) => (w.pin === pins.barrierPin && w.kind !== 'mode' ? pins.isOpenValue(w) : undefined),
    setBeam: (blocked) => io.setInput(pins.beamPin, blocked ? pins.blockedLevel : ((1 - pins.blockedLevel) as 0 | 1)),
  });
  io.setInput(pins.beamPin, (1 - pins.blockedLevel) as 0 | 1);
  const off = io.onWrite((w) => walker.onWrite(w));
  return Object.assign(walker, {
    detach() {
      off();
      walker.stop();
    },
  });
}

/** Per slot: how the mechanism behaves when its motor runs. */
export type SlotBehaviour = { kind: 'drops'; afterMs: number } | { kind: 'jammed' } | { kind: 'empty' };

export class VendingMechanics {
  private readonly behaviour = new Map<number, SlotBehaviour>();
  private timers: Array<ReturnType<typeof setTimeout>> = [];
  private readonly running = new Set<number>();

  constructor(private readonly pulseDrop: () => void, private readonly defaultDropMs = 40) {}

  setSlot(slot: number, behaviour: SlotBehaviour): void {
    this.behaviour.set(slot, behaviour);
  }

  motorChanged(slot: number, on: boolean): void {
    if (!on) {
      this.running.delete(slot);
      return;
    }
    if (this.running.has(slot)) return;
    this.running.add(slot);
    const b = this.behaviour.get(slot) ?? { kind: 'drops', afterMs: this.defaultDropMs };
    if (b.kind !== 'drops') return;
    this.timers.push(later(b.afterMs, () => {
      if (this.running.has(slot)) this.pulseDrop();
    }));
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}

/** Attach vending mechanics to a virtual board: motor relay pins in, drop sensor pulses out. */
export function attachVendingMechanics(
  io: VirtualIo,
  pins: { motorPins: readonly number[]; dropPin: number; activeLevel: 0 | 1; pulseMs?: number },
): VendingMechanics & { detach(): void } {
  const idle = (1 - pins.activeLevel) as 0 | 1;
  io.setInput(pins.dropPin, idle);
  const timers: Array<ReturnType<typeof setTimeout>> = [];
  const mechanics = new VendingMechanics(() => {
    io.setInput(pins.dropPin, pins.activeLevel);
    timers.push(later(pins.pulseMs ?? 25, () => io.setInput(pins.dropPin, idle)));
  });
  const off = io.onWrite((w) => {
    const slot = pins.motorPins.indexOf(w.pin);
    if (slot >= 0 && w.kind === 'digital') mechanics.motorChanged(slot, w.value === 1);
  });
  return Object.assign(mechanics, {
    detach() {
      off();
      mechanics.stop();
      for (const t of timers) clearTimeout(t);
    },
  });
}
