import { describeGateContract, describePosContract, describeVendingContract } from '../../hardware/actuators/actuators.contract.ts';
import { createMemoryGate, createMemoryPos, createMemoryVending, MemoryDisplay } from './memory-actuators.ts';

describeGateContract('in-memory', async () => {
  const { gate, hardware } = createMemoryGate({ closeDelayMs: 20, beepMs: 20, denyMs: 60 });
  return {
    gate,
    visitor: (v) => hardware.walker.enqueue(v),
    barrierOpen: () => hardware.barrierOpen,
    beamBlocked: () => hardware.beamBlocked(),
    led: (which) => hardware.leds[which],
    buzzer: () => hardware.buzzerOn,
    close: () => gate.close(),
  };
});

describeVendingContract('in-memory', async () => {
  const { vending, hardware } = createMemoryVending(3);
  return {
    vending,
    slot: (slot, b) => hardware.mechanics.setSlot(slot, b),
    motorOn: (slot) => hardware.motors[slot] === true,
    close: () => vending.close(),
  };
});

describePosContract('in-memory', async () => {
  const display = new MemoryDisplay();
  const { pos, hardware } = createMemoryPos(display);
  return {
    pos,
    led: (which) => hardware.leds[which],
    buzzer: () => hardware.buzzerOn,
    displayed: () => display.lines,
    close: () => pos.close(),
  };
});
