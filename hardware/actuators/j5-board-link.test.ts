// A board that goes away after start: the Firmata board emulator on a socat pty is closed (as a
// USB Arduino unplugged), and johnny-five, firmata.js and serialport 13 run for real on the host end.
import { afterEach, describe, expect, it } from 'vitest';
import type { HardwareError } from '../errors.ts';
import { openJ5Board, type J5Board } from './j5-board.ts';
import { createJ5Gate } from './j5-gate.ts';
import { createJ5Vending } from './j5-vending.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedFirmataBoard, type EmulatedFirmataBoard } from '../../simulators/virtual-io/firmata-board-emulator.ts';
import { attachVendingMechanics } from '../../simulators/virtual-io/sensor-sims.ts';
import { VirtualIo } from '../../simulators/virtual-io/virtual-io.ts';

const MOTOR_PINS = [4, 7];
const DROP_PIN = 12;

/** firmata.js counts writes handed to the transport and not yet called back (`pending`). */
const pendingWrites = (board: J5Board): number => (board.io as { pending: number }).pending;

function lostSoon(board: J5Board, timeoutMs = 3000): Promise<HardwareError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`board not reported lost within ${timeoutMs} ms`)), timeoutMs);
    board.onLost((err) => {
      clearTimeout(timer);
      resolve(err);
    });
  });
}

describe.skipIf(!isSocatAvailable())('johnny-five over Firmata on a pty: the board goes away', () => {
  let emulated: EmulatedFirmataBoard | undefined;
  afterEach(async () => {
    await emulated?.close();
    emulated = undefined;
  });

  async function start(heartbeatMs?: number): Promise<{ board: J5Board; emulated: EmulatedFirmataBoard }> {
    emulated = await startEmulatedFirmataBoard();
    const board = await openJ5Board({ port: emulated.path, readyTimeoutMs: 8000, ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) });
    return { board, emulated };
  }

  it('keeps the line busy for a firmware watchdog: a REPORT_VERSION every heartbeatMs, answered by the board; none with 0', async () => {
    const answers = async (board: J5Board): Promise<number> => {
      let n = 0;
      const io = board.io as { on(e: string, f: () => void): void; off(e: string, f: () => void): void };
      const count = (): void => void n++;
      io.on('reportversion', count);
      await new Promise((r) => setTimeout(r, 500));
      io.off('reportversion', count);
      return n;
    };
    const { board, emulated: e } = await start(50);
    expect(await answers(board)).toBeGreaterThanOrEqual(4);
    await e.close();
    const quiet = await start(0);
    expect(await answers(quiet.board)).toBe(0);
  });

  it('reports the loss once, typed ACTUATOR_LINK_LOST, with serialport\'s DisconnectedError as its cause', async () => {
    const { board, emulated: e } = await start();
    expect(board.lost).toBeUndefined();
    const calls: HardwareError[] = [];
    board.onLost((err) => calls.push(err));
    const lost = lostSoon(board);
    await e.close();
    const err = await lost;
    expect(err).toMatchObject({ name: 'HardwareError', code: 'ACTUATOR_LINK_LOST' });
    expect(err.cause).toMatchObject({ disconnected: true }); // serialport's DisconnectedError
    expect(board.lost).toBe(err);
    await new Promise((r) => setTimeout(r, 100)); // firmata's and johnny-five's re-emitted 'close' follow
    expect(calls).toEqual([err]);
    // A late subscriber hears of it too (in a microtask), so a loss before wiring is not missed.
    await expect(new Promise((resolve) => board.onLost(resolve))).resolves.toBe(err);
  });

  it('after the loss a dispense or a passage fails at once, and nothing is queued on the dead port', async () => {
    const { board, emulated: e } = await start();
    attachVendingMechanics(e.board.io, { motorPins: MOTOR_PINS, dropPin: DROP_PIN, activeLevel: 1 });
    const vending = createJ5Vending(board, { motorPins: MOTOR_PINS, drop: { pin: DROP_PIN, activeLevel: 1 } });
    const gate = createJ5Gate(board, { barrier: { kind: 'relay', pin: 10 }, beam: { pin: 2, blockedLevel: 0 }, entryLed: 5, exitLed: 6, deniedLed: 8, buzzer: 9 });
    await new Promise((r) => setTimeout(r, 100)); // the first sensor reports
    const lost = lostSoon(board);
    await e.close();
    await lost;
    await new Promise((r) => setTimeout(r, 50));
    const pending = pendingWrites(board);

    const t0 = performance.now();
    await expect(vending.dispense(0, { timeoutMs: 3000 })).rejects.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
    await expect(gate.admit({ passageTimeoutMs: 3000 })).rejects.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
    expect(performance.now() - t0).toBeLessThan(500);
    // Writes on a closed serialport stream wait for an 'open' that never comes: none were made.
    expect(pendingWrites(board)).toBe(pending);
    await vending.close();
    await gate.close();
    expect(pendingWrites(board)).toBe(pending);
  });

  it('a dispense under way when the board goes ends at once with ACTUATOR_LINK_LOST, not after its timeout', async () => {
    const { board, emulated: e } = await start();
    const mechanics = attachVendingMechanics(e.board.io, { motorPins: MOTOR_PINS, dropPin: DROP_PIN, activeLevel: 1 });
    mechanics.setSlot(1, { kind: 'jammed' });
    const vending = createJ5Vending(board, { motorPins: MOTOR_PINS, drop: { pin: DROP_PIN, activeLevel: 1 } });
    await new Promise((r) => setTimeout(r, 100));
    const dispensing = vending.dispense(1, { timeoutMs: 5000 });
    dispensing.catch(() => undefined);
    for (let i = 0; i < 200 && e.board.io.value(MOTOR_PINS[1]!) !== 1; i++) await new Promise((r) => setTimeout(r, 5));
    expect(e.board.io.value(MOTOR_PINS[1]!)).toBe(1);
    const t0 = performance.now();
    await e.close();
    await expect(dispensing).rejects.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});

describe('johnny-five on an IO plugin: an error after ready', () => {
  it('is the link lost, not swallowed by the start-up handler (and not an unhandled error event)', async () => {
    const io = new VirtualIo();
    const board = await openJ5Board({ io });
    const first = new Error('EIO: i/o error');
    const lost = lostSoon(board, 1000);
    io.emit('error', first);
    const err = await lost;
    expect(err).toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
    expect(err.cause).toBe(first);
    expect(() => io.emit('error', new Error('a second one'))).not.toThrow();
    expect(board.lost).toBe(err);
  });

  it("a 'close' of the IO plugin is the link lost", async () => {
    const io = new VirtualIo();
    const board = await openJ5Board({ io });
    const lost = lostSoon(board, 1000);
    io.emit('close');
    await expect(lost).resolves.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
  });
});
