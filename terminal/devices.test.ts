// openHardware on the emulated PN532 and the virtual board: an unplugged reader is logged; an IO
// plugin shaped like raspi-io 11 (a named export, no default) drives the board.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedFirmataBoard } from '../simulators/virtual-io/firmata-board-emulator.ts';
import { VirtualIo } from '../simulators/virtual-io/virtual-io.ts';
import { parseConfig } from './config.ts';
import { openHardware, VIRTUAL_PINS, type OpenedHardware } from './devices.ts';

const KEY = 'a'.repeat(64);

function memoryLog(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('waitFor: condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(!isSocatAvailable())('openHardware (emulated PN532, virtual board)', () => {
  let hardware: OpenedHardware | undefined;
  afterEach(async () => {
    await hardware?.close();
    hardware = undefined;
  });

  it('logs an unplugged NFC reader at error and its return at info', async () => {
    const config = parseConfig({
      terminalId: 'gate-3', kind: 'gate', merchantId: 'transit', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
      hub: { url: 'mqtt://hub.local:1883', hubKey: KEY, issuerKeys: [KEY] },
      nfc: { kind: 'emulated' }, io: { kind: 'virtual' }, gate: { station: 'north', mode: 'entry' },
    }, '/tmp', {});
    const { log, lines } = memoryLog();
    hardware = await openHardware(config, log);
    const emulated = hardware.sim.emulator!;
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);

    await emulated.unplug();
    await waitFor(() => lines.some((l) => l.level === 50 && /NFC reader disconnected/.test(l.msg)));
    await emulated.plug();
    await waitFor(() => lines.some((l) => l.level === 30 && /NFC reader reconnected/.test(l.msg)));
  });

  it('constructs an IO plugin shaped like raspi-io 11 (`require(\'raspi-io\').RaspiIO`, no default export) and drives the gate through it', async () => {
    // A stand-in package in a temp node_modules: CommonJS, `exports.RaspiIO = RaspiIO`, as raspi-io's dist/index.js.
    const root = mkdtempSync(join(tmpdir(), 'tapsettle-io-plugin-'));
    try {
      const pkg = join(root, 'node_modules', 'raspi-io');
      mkdirSync(join(pkg, 'dist'), { recursive: true });
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'raspi-io', version: '11.0.0', main: 'dist/index.js' }));
      writeFileSync(
        join(pkg, 'dist', 'index.js'),
        [
          '"use strict";',
          'Object.defineProperty(exports, "__esModule", { value: true });',
          '// raspi-io returns a J5IO from a plain function; here the virtual board the test hands over.',
          'function RaspiIO(options) { globalThis.__tapsettleRaspiIoCalls = (globalThis.__tapsettleRaspiIoCalls || 0) + 1; return new globalThis.__tapsettleTestIo(options); }',
          'exports.RaspiIO = RaspiIO;',
          '',
        ].join('\n'),
      );
      const resolveIoPlugin = (name: string): string => pathToFileURL(createRequire(join(root, 'index.js')).resolve(name)).href;
      const g = globalThis as { __tapsettleTestIo?: unknown; __tapsettleRaspiIoCalls?: number };
      g.__tapsettleTestIo = VirtualIo;
      const config = parseConfig({
        terminalId: 'gate-3', kind: 'gate', merchantId: 'transit', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
        hub: { url: 'mqtt://hub.local:1883', hubKey: KEY, issuerKeys: [KEY] },
        nfc: { kind: 'emulated' }, io: { kind: 'johnny-five', ioPlugin: 'raspi-io', gate: VIRTUAL_PINS.gate }, gate: { station: 'park', mode: 'entry' },
      }, '/tmp', {});
      hardware = await openHardware(config, memoryLog().log, { resolveIoPlugin });
      expect(g.__tapsettleRaspiIoCalls).toBe(1);
      expect(hardware.devices.gate).toBeDefined();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isSocatAvailable())('openHardware (a Firmata board on a pty)', () => {
  it('hands the board\'s loss on as hardware.board (ACTUATOR_LINK_LOST); the vending actuator then fails at once', async () => {
    const emulated = await startEmulatedFirmataBoard();
    let hardware: OpenedHardware | undefined;
    try {
      const config = parseConfig({
        terminalId: 'vend-1', kind: 'vending', merchantId: 'kiosk', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
        hub: { url: 'mqtt://hub.local:1883', hubKey: KEY, issuerKeys: [KEY] },
        nfc: { kind: 'emulated' }, io: { kind: 'johnny-five', port: emulated.path, vending: { motorPins: [4, 7], drop: { pin: 12, activeLevel: 1 } } },
      }, '/tmp', {});
      hardware = await openHardware(config, memoryLog().log);
      const vending = hardware.devices.vending!;
      expect(vending.slotCount).toBe(2);
      expect(hardware.board.lost).toBeUndefined();
      const lost = new Promise<unknown>((resolve) => hardware!.board.onLost(resolve));
      await emulated.close(); // the Arduino's USB cable pulled
      await expect(lost).resolves.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
      const t0 = performance.now();
      await expect(vending.dispense(0, { timeoutMs: 3000 })).rejects.toMatchObject({ code: 'ACTUATOR_LINK_LOST' });
      expect(performance.now() - t0).toBeLessThan(500);
    } finally {
      await hardware?.close();
      await emulated.close();
    }
  });
});
