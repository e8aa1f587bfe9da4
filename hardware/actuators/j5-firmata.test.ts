// johnny-five's default path for real boards: Firmata over a serial port. Here the port is a
// socat pty and the board a Firmata emulator, so johnny-five, firmata.js and its serialport run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeGateContract, describeVendingContract } from './actuators.contract.ts';
import { openJ5Board } from './j5-board.ts';
import { createJ5Gate } from './j5-gate.ts';
import { createJ5Vending } from './j5-vending.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedFirmataBoard } from '../../simulators/virtual-io/firmata-board-emulator.ts';
import { attachGateWalker, attachVendingMechanics } from '../../simulators/virtual-io/sensor-sims.ts';

const noSocat = !isSocatAvailable();

describe('johnny-five over Firmata: a port that cannot be opened', () => {
  it('is a typed start failure, not an unhandled error event', async () => {
    // A regular file is no serial port: serialport's open fails, and firmata re-emits it as 'error'.
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-firmata-'));
    try {
      const notATty = join(dir, 'not-a-tty');
      writeFileSync(notATty, '');
      await expect(openJ5Board({ port: notATty, readyTimeoutMs: 5000 })).rejects.toMatchObject({ code: 'ACTUATOR_NOT_READY' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(noSocat)('johnny-five over Firmata on a pty', () => {
  it('becomes ready and drives a servo the way StandardFirmata sees it', async () => {
    const emulated = await startEmulatedFirmataBoard();
    try {
      const board = await openJ5Board({ port: emulated.path, readyTimeoutMs: 8000 });
      emulated.board.io.setInput(2, 1);
      const gate = createJ5Gate(board, {
        barrier: { kind: 'servo', pin: 9, closedDeg: 0, openDeg: 90 },
        beam: { pin: 2, blockedLevel: 0 },
        entryLed: 5, exitLed: 6, deniedLed: 7, buzzer: 8,
      }, { closeDelayMs: 10, beepMs: 10 });
      await new Promise((r) => setTimeout(r, 100));
      const result = await gate.admit({ passageTimeoutMs: 60 });
      expect(result.kind).toBe('timeout');
      const servo = (): number[] => emulated.board.io.writesTo(9, 'servo').map((w) => w.value);
      for (let i = 0; i < 200 && servo().length < 3; i++) await new Promise((r) => setTimeout(r, 5));
      expect(servo()).toEqual([600, 1500, 600]);
      await gate.close();
    } finally {
      await emulated.close();
    }
  });
});

if (!noSocat) {
  describeGateContract('johnny-five relay over Firmata on a pty', async () => {
    const emulated = await startEmulatedFirmataBoard();
    const board = await openJ5Board({ port: emulated.path, readyTimeoutMs: 8000 });
    const io = emulated.board.io;
    const walker = attachGateWalker(io, { barrierPin: 10, isOpenValue: (w) => w.kind === 'digital' && w.value === 1, beamPin: 2, blockedLevel: 0 });
    const gate = createJ5Gate(board, {
      barrier: { kind: 'relay', pin: 10 },
      beam: { pin: 2, blockedLevel: 0 },
      entryLed: 4, exitLed: 7, deniedLed: 8, buzzer: 12,
    }, { closeDelayMs: 20, beepMs: 20, denyMs: 60 });
    await new Promise((r) => setTimeout(r, 100)); // let the first port report arrive
    return {
      gate,
      visitor: (v) => walker.enqueue(v),
      barrierOpen: () => io.value(10) === 1,
      beamBlocked: () => io.value(2) === 0,
      led: (which) => io.value({ entry: 4, exit: 7, denied: 8 }[which]) > 0,
      buzzer: () => io.value(12) > 0,
      close: async () => {
        walker.detach();
        await gate.close();
        await emulated.close();
      },
    };
  });

  describeVendingContract('johnny-five relays over Firmata on a pty', async () => {
    const emulated = await startEmulatedFirmataBoard();
    const board = await openJ5Board({ port: emulated.path, readyTimeoutMs: 8000 });
    const io = emulated.board.io;
    const motorPins = [4, 7, 8];
    const mechanics = attachVendingMechanics(io, { motorPins, dropPin: 12, activeLevel: 1 });
    const vending = createJ5Vending(board, { motorPins, drop: { pin: 12, activeLevel: 1, stuckAfterMs: 30 } });
    await new Promise((r) => setTimeout(r, 100));
    return {
      vending,
      slot: (slot, b) => mechanics.setSlot(slot, b),
      motorOn: (slot) => io.value(motorPins[slot]!) === 1,
      setDropBeam: (blocked) => io.setInput(12, blocked ? 1 : 0),
      motorEverOn: (slot) => io.writesTo(motorPins[slot]!, 'digital').some((w) => w.value === 1),
      close: async () => {
        mechanics.detach();
        await vending.close();
        await emulated.close();
      },
    };
  }, { dropSensor: true });
}
