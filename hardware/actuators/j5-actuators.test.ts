// The real johnny-five-backed Gate/Vending/Pos, on the virtual IO plugin: johnny-five really runs.
import { describe, expect, it } from 'vitest';
import { describeGateContract, describePosContract, describeVendingContract } from './actuators.contract.ts';
import { openJ5Board } from './j5-board.ts';
import { createJ5Gate, type J5GatePins } from './j5-gate.ts';
import { createJ5Vending } from './j5-vending.ts';
import { createJ5Pos } from './j5-pos.ts';
import { VirtualIo } from '../../simulators/virtual-io/virtual-io.ts';
import { attachGateWalker, attachVendingMechanics } from '../../simulators/virtual-io/sensor-sims.ts';
import { MemoryDisplay } from '../../simulators/virtual-io/memory-actuators.ts';

const SERVO_OPEN_US = 1500; // 90° on johnny-five's default 600–2400 µs range
const gatePins = (barrier: J5GatePins['barrier']): J5GatePins => ({ barrier, beam: { pin: 2, blockedLevel: 0 }, entryLed: 5, exitLed: 6, deniedLed: 7, buzzer: 8 });

for (const barrier of [{ kind: 'servo', pin: 9, closedDeg: 0, openDeg: 90 }, { kind: 'relay', pin: 10 }] as const) {
  describeGateContract(`johnny-five ${barrier.kind} on VirtualIo`, async () => {
    const io = new VirtualIo();
    const board = await openJ5Board({ io });
    const pins = gatePins(barrier);
    const walker = attachGateWalker(io, {
      barrierPin: barrier.pin,
      isOpenValue: (w) => (barrier.kind === 'servo' ? w.value >= SERVO_OPEN_US : w.value === 1),
      beamPin: 2,
      blockedLevel: 0,
    });
    await new Promise((r) => setTimeout(r, 20)); // let johnny-five read the idle beam level
    const gate = createJ5Gate(board, pins, { closeDelayMs: 20, beepMs: 20, denyMs: 60 });
    return {
      gate,
      visitor: (v) => walker.enqueue(v),
      barrierOpen: () => (barrier.kind === 'servo' ? io.value(barrier.pin) >= SERVO_OPEN_US : io.value(barrier.pin) === 1),
      beamBlocked: () => io.value(2) === 0,
      led: (which) => io.value({ entry: 5, exit: 6, denied: 7 }[which]) > 0,
      buzzer: () => io.value(8) > 0,
      close: async () => {
        walker.detach();
        await gate.close();
      },
    };
  });
}

describeVendingContract('johnny-five relays on VirtualIo', async () => {
  const io = new VirtualIo();
  const board = await openJ5Board({ io });
  const motorPins = [3, 4, 11];
  const mechanics = attachVendingMechanics(io, { motorPins, dropPin: 12, activeLevel: 1 });
  const vending = createJ5Vending(board, { motorPins, drop: { pin: 12, activeLevel: 1, stuckAfterMs: 30 } });
  await new Promise((r) => setTimeout(r, 20)); // the first drop-sensor reading: until then it is not known clear
  return {
    vending,
    slot: (slot, b) => mechanics.setSlot(slot, b),
    motorOn: (slot) => io.value(motorPins[slot]!) === 1,
    setDropBeam: (blocked) => io.setInput(12, blocked ? 1 : 0),
    motorEverOn: (slot) => io.writesTo(motorPins[slot]!, 'digital').some((w) => w.value === 1),
    close: async () => {
      mechanics.detach();
      await vending.close();
    },
  };
}, { dropSensor: true });

describePosContract('johnny-five LEDs on VirtualIo', async () => {
  const io = new VirtualIo();
  const board = await openJ5Board({ io });
  const display = new MemoryDisplay();
  const pos = createJ5Pos(board, { greenLed: 5, yellowLed: 6, redLed: 7, buzzer: 8 }, display);
  return {
    pos,
    led: (which) => io.value({ green: 5, yellow: 6, red: 7 }[which]) > 0,
    buzzer: () => io.value(8) > 0,
    displayed: () => display.lines,
    close: () => pos.close(),
  };
});

describe('the drop sensor of a johnny-five vending machine', () => {
  it('a beam blocked as briefly as a falling article blocks it leaves the machine ready; blocked for longer, it is stuck', async () => {
    const io = new VirtualIo();
    const board = await openJ5Board({ io });
    const vending = createJ5Vending(board, { motorPins: [3], drop: { pin: 12, activeLevel: 1, stuckAfterMs: 300 } });
    try {
      await new Promise((r) => setTimeout(r, 20)); // the first reading
      expect(vending.ready()).toBe(true);
      io.setInput(12, 1); // an article (the previous sale's) crossing the beam
      await new Promise((r) => setTimeout(r, 40));
      expect(vending.ready()).toBe(true); // a customer quick on the keypad is not refused
      await new Promise((r) => setTimeout(r, 400));
      expect(vending.ready()).toBe(false); // still blocked: something sits in the beam
      io.setInput(12, 0);
      await new Promise((r) => setTimeout(r, 40));
      expect(vending.ready()).toBe(true);
    } finally {
      await vending.close();
    }
  });
});

describe('VirtualIo as a johnny-five IO plugin', () => {
  it('records the servo and LED writes johnny-five makes, with timestamps', async () => {
    const io = new VirtualIo();
    io.setInput(2, 1); // beam clear (the receiver pulls low when interrupted)
    const board = await openJ5Board({ io });
    const gate = createJ5Gate(board, gatePins({ kind: 'servo', pin: 9, closedDeg: 0, openDeg: 90 }), { closeDelayMs: 5, beepMs: 5 });
    await gate.admit({ passageTimeoutMs: 30 });
    const servo = io.writesTo(9, 'servo').map((w) => w.value);
    expect(servo).toEqual([600, 1500, 600]);
    const times = io.writesTo(9, 'servo').map((w) => w.atMs);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(30);
    expect(io.writesTo(5).some((w) => w.value > 0)).toBe(true);
    await gate.close();
  });
});
