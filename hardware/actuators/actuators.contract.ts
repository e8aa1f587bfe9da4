// One contract per actuator interface, run against johnny-five on the virtual IO board and
// against the in-memory hardware.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHardwareError } from '../errors.ts';
import type { Gate } from './gate.ts';
import type { Vending } from './vending.ts';
import type { Pos } from './pos.ts';
import type { Visitor, SlotBehaviour } from '../../simulators/virtual-io/sensor-sims.ts';

/**
 * Outputs reach a board over a serial link a little later than the call returns; a contract
 * about pin levels therefore waits (bounded) for the level instead of sampling once.
 */
async function expectSoon<T>(read: () => T, expected: T, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (read() !== expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(read()).toBe(expected);
}

export type GateHarness = {
  gate: Gate;
  visitor(v: Visitor): void;
  barrierOpen(): boolean;
  beamBlocked(): boolean;
  led(which: 'entry' | 'exit' | 'denied'): boolean;
  buzzer(): boolean;
  close(): Promise<void>;
};

/** Sample the outputs every few ms and remember any moment the barrier was closed on a person. */
function watchSafety(h: GateHarness): { stop(): number } {
  let violations = 0;
  const t = setInterval(() => {
    if (h.beamBlocked() && !h.barrierOpen()) violations++;
  }, 3);
  return {
    stop() {
      clearInterval(t);
      return violations;
    },
  };
}

export function describeGateContract(name: string, make: () => Promise<GateHarness>): void {
  describe(`Gate contract: ${name}`, () => {
    let h: GateHarness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    it('opens for a passage, closes after the person went through', async () => {
      h.visitor({ kind: 'walk-through', walkInMs: 30, blockedMs: 40 });
      const safety = watchSafety(h);
      const admitting = h.gate.admit({ direction: 'entry', passageTimeoutMs: 1000 });
      await new Promise((r) => setTimeout(r, 15));
      await expectSoon(() => h.barrierOpen(), true);
      await expectSoon(() => h.led('entry'), true);
      const result = await admitting;
      expect(result).toMatchObject({ kind: 'passed', direction: 'entry' });
      await expectSoon(() => h.barrierOpen(), false);
      await expectSoon(() => h.led('entry'), false);
      expect(h.gate.isOpen).toBe(false);
      expect(safety.stop()).toBe(0);
    });

    it('closes after the timeout when nobody comes', async () => {
      h.visitor({ kind: 'nobody' });
      let entered = false;
      const result = await h.gate.admit({ direction: 'exit', passageTimeoutMs: 80, onEntered: () => (entered = true) });
      expect(result).toMatchObject({ kind: 'timeout', direction: 'exit' });
      expect(entered).toBe(false);
      await expectSoon(() => h.barrierOpen(), false);
    });

    it('never closes while the beam is blocked, even past the timeout; tells at once that someone entered', async () => {
      h.visitor({ kind: 'linger', walkInMs: 20, blockedMs: 250 });
      const safety = watchSafety(h);
      let entered = 0;
      let done = false;
      const admitting = h.gate.admit({ passageTimeoutMs: 60, onEntered: () => entered++ });
      void admitting.then(() => (done = true));
      await new Promise((r) => setTimeout(r, 150)); // timeout passed, person still in the beam
      await expectSoon(() => h.beamBlocked(), true);
      await expectSoon(() => h.barrierOpen(), true);
      // Known while they are still in the beam, long before the barrier closes (and only once).
      expect([entered, done]).toEqual([1, false]);
      const result = await admitting;
      expect(entered).toBe(1);
      expect(result.kind).toBe('passed');
      expect(result.openMs).toBeGreaterThanOrEqual(250);
      await expectSoon(() => h.barrierOpen(), false);
      expect(safety.stop()).toBe(0);
    });

    it('close() while open leaves the barrier closed (fail-secure) and ends the passage', async () => {
      h.visitor({ kind: 'nobody' });
      const admitting = h.gate.admit({ direction: 'exit', passageTimeoutMs: 5000 });
      await expectSoon(() => h.barrierOpen(), true);
      await h.gate.close();
      await expectSoon(() => h.barrierOpen(), false);
      expect(h.gate.isOpen).toBe(false);
      expect(await admitting).toMatchObject({ kind: 'timeout', direction: 'exit' });
      await expectSoon(() => h.led('exit'), false);
      expect(isHardwareError(await h.gate.admit().catch((e: unknown) => e), 'ACTUATOR_CLOSED')).toBe(true);
      await expectSoon(() => h.barrierOpen(), false);
    });

    it('refuses a second admit while a passage is in progress with ACTUATOR_BUSY', async () => {
      h.visitor({ kind: 'nobody' });
      const admitting = h.gate.admit({ passageTimeoutMs: 60 });
      expect(isHardwareError(await h.gate.admit().catch((e: unknown) => e), 'ACTUATOR_BUSY')).toBe(true);
      expect((await admitting).kind).toBe('timeout');
    });

    it('signals a refusal without opening', async () => {
      const denying = h.gate.deny();
      await new Promise((r) => setTimeout(r, 10));
      await expectSoon(() => h.led('denied'), true);
      await expectSoon(() => h.buzzer(), true);
      await expectSoon(() => h.barrierOpen(), false);
      await denying;
      await expectSoon(() => h.led('denied'), false);
      await expectSoon(() => h.buzzer(), false);
    });
  });
}

export type VendingHarness = {
  vending: Vending;
  slot(slot: number, behaviour: SlotBehaviour): void;
  motorOn(slot: number): boolean;
  /** Hardware with a drop-sensor level (describeVendingContract's `dropSensor`): hold the beam blocked or clear. */
  setDropBeam?(blocked: boolean): void;
  /** With `setDropBeam`: whether the slot's motor was ever switched on since the harness was made. */
  motorEverOn?(slot: number): boolean;
  close(): Promise<void>;
};

/** `dropSensor`: the hardware reads the drop sensor's level, so the harness has setDropBeam and motorEverOn. */
export function describeVendingContract(name: string, make: () => Promise<VendingHarness>, features: { dropSensor?: boolean } = {}): void {
  describe(`Vending contract: ${name}`, () => {
    let h: VendingHarness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    it('runs the slot motor until the article drops', async () => {
      h.slot(1, { kind: 'drops', afterMs: 40 });
      const dispensing = h.vending.dispense(1, { timeoutMs: 1000 });
      await new Promise((r) => setTimeout(r, 15));
      await expectSoon(() => h.motorOn(1), true);
      await expectSoon(() => h.motorOn(0), false);
      const result = await dispensing;
      expect(result).toMatchObject({ kind: 'dispensed', slot: 1 });
      await expectSoon(() => h.motorOn(1), false);
    });

    it('reports a failed dispense when nothing drops within the timeout', async () => {
      h.slot(0, { kind: 'jammed' });
      expect(await h.vending.dispense(0, { timeoutMs: 80 })).toEqual({ kind: 'failed', slot: 0, reason: 'no-drop' });
      await expectSoon(() => h.motorOn(0), false);
    });

    it('dispenses one slot at a time', async () => {
      h.slot(0, { kind: 'drops', afterMs: 30 });
      h.slot(1, { kind: 'empty' });
      const [a, b] = await Promise.all([h.vending.dispense(0, { timeoutMs: 500 }), h.vending.dispense(1, { timeoutMs: 60 })]);
      expect(a.kind).toBe('dispensed');
      expect(b.kind).toBe('failed');
    });

    it('rejects a slot the machine does not have with VENDING_SLOT_UNKNOWN, never a synchronous throw, and vends on', async () => {
      for (const slot of [h.vending.slotCount, -1, 0.5, Number.NaN]) {
        let dispensing: Promise<unknown> | undefined;
        expect(() => (dispensing = h.vending.dispense(slot, { timeoutMs: 50 }))).not.toThrow();
        await expect(dispensing).rejects.toMatchObject({ code: 'VENDING_SLOT_UNKNOWN' });
      }
      for (let s = 0; s < h.vending.slotCount; s++) expect(h.motorOn(s)).toBe(false);
      h.slot(0, { kind: 'drops', afterMs: 20 });
      expect(await h.vending.dispense(0, { timeoutMs: 1000 })).toMatchObject({ kind: 'dispensed', slot: 0 });
    });

    if (features.dropSensor) {
      it('refuses to run the motor while the drop sensor reads blocked: failed, DROP_SENSOR_BLOCKED, then vends once it is clear', async () => {
        h.slot(1, { kind: 'drops', afterMs: 20 });
        h.setDropBeam!(true);
        await new Promise((r) => setTimeout(r, 50)); // the blocked level reaches the host
        expect(h.vending.ready()).toBe(false); // what the terminal asks before it charges anyone
        expect(await h.vending.dispense(1, { timeoutMs: 1000 })).toEqual({ kind: 'failed', slot: 1, reason: 'drop-sensor-blocked', code: 'DROP_SENSOR_BLOCKED' });
        await new Promise((r) => setTimeout(r, 50)); // a motor write, had there been one, would have landed
        expect(h.motorEverOn!(1)).toBe(false);
        h.setDropBeam!(false);
        await new Promise((r) => setTimeout(r, 50));
        expect(h.vending.ready()).toBe(true);
        expect(await h.vending.dispense(1, { timeoutMs: 1000 })).toMatchObject({ kind: 'dispensed', slot: 1 });
        expect(h.motorEverOn!(1)).toBe(true);
      });
    }
  });
}

export type PosHarness = {
  pos: Pos;
  led(which: 'green' | 'yellow' | 'red'): boolean;
  buzzer(): boolean;
  displayed(): string[];
  close(): Promise<void>;
};

export function describePosContract(name: string, make: () => Promise<PosHarness>): void {
  describe(`Pos contract: ${name}`, () => {
    let h: PosHarness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    it('shows the amount and result on the display line, bounded to one row', async () => {
      await h.pos.show('Total EUR 3.50');
      await h.pos.show(`approved\n${'x'.repeat(80)}`);
      expect(h.displayed().slice(-2)).toEqual(['Total EUR 3.50', `approved ${'x'.repeat(23)}`]);
      expect(h.pos.line).toHaveLength(32);
    });

    it('maps status to LEDs', async () => {
      await h.pos.setStatus('busy');
      await expectSoon(() => [h.led('green'), h.led('yellow'), h.led('red')].join(), 'false,true,false');
      await h.pos.setStatus('approved');
      await expectSoon(() => [h.led('green'), h.led('yellow'), h.led('red')].join(), 'true,false,false');
      await h.pos.setStatus('declined');
      await expectSoon(() => [h.led('green'), h.led('yellow'), h.led('red')].join(), 'false,false,true');
      expect(h.pos.status).toBe('declined');
    });

    it('beeps and leaves the buzzer off afterwards', async () => {
      const beeping = h.pos.beep('error');
      await new Promise((r) => setTimeout(r, 20));
      await expectSoon(() => h.buzzer(), true);
      await beeping;
      await expectSoon(() => h.buzzer(), false);
    });
  });
}
