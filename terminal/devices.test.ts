// openHardware on the emulated PN532 and the virtual board: an unplugged reader is logged; an IO
// plugin shaped like raspi-io 11 (a named export, no default) drives the board; a configured
// receipt printer becomes devices.print, its failures are logged and its slips reprinted, and a
// missing one stops the start with DEVICE_UNAVAILABLE (exit 69).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair, issueTerminalCertificate, toHex } from '../protocol/index.ts';
import { decodeSlips } from '../hardware/printer/receipt-printer.contract.ts';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { MemoryReceiptPrinter } from '../simulators/virtual-io/memory-receipt-printer.ts';
import { startEmulatedFirmataBoard } from '../simulators/virtual-io/firmata-board-emulator.ts';
import { VirtualIo } from '../simulators/virtual-io/virtual-io.ts';
import { parseConfig } from './config.ts';
import { openHardware, slipPrinter, VIRTUAL_PINS, type OpenedHardware } from './devices.ts';
import { isStartError, startTerminal } from './start-terminal.ts';

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

type LogRecord = { level: number; msg: string; code?: string; receipt?: string[] };
function recordingLog(): { log: pino.Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), records };
}

describe('slipPrinter (devices.print on a ReceiptPrinter)', () => {
  it('prints slips in order; a failed one is logged at error with its lines, kept, and printed as a REPRINT before the next slip', async () => {
    const printer = new MemoryReceiptPrinter();
    const { log, records } = recordingLog();
    const slips = slipPrinter(printer, log, { now: () => Date.UTC(2026, 11, 2, 18, 10), retryMs: 60_000 });
    await slips.print(['TOTAL 4.90 EUR']); // resolves once printed
    expect(printer.slips).toHaveLength(1);
    printer.failWrites = true;
    let lateDeclinePrinted = false;
    const lateDecline = slips.print(['LATE DECLINE', 'give the cash back']).then(() => (lateDeclinePrinted = true));
    await waitFor(() => records.some((r) => r.level === 50));
    expect(records.find((r) => r.level === 50)).toMatchObject({ code: 'PRINTER_WRITE_FAILED', receipt: ['LATE DECLINE', 'give the cash back'] });
    expect(slips.unprinted.map((s) => s.lines)).toEqual([['LATE DECLINE', 'give the cash back']]);
    expect(lateDeclinePrinted).toBe(false); // the runtime keeps it in its store meanwhile
    printer.failWrites = false;
    await slips.print(['next customer']);
    await lateDecline; // resolved by its REPRINT
    expect(printer.slips).toEqual([['TOTAL 4.90 EUR'], ['REPRINT 2026-12-02 18:10 UTC', 'LATE DECLINE', 'give the cash back'], ['next customer']]);
    expect(slips.unprinted).toEqual([]);
    await slips.close();
    await expect(slips.print(['after close'])).rejects.toMatchObject({ code: 'PRINTER_CLOSED' });
    expect(records.at(-1)).toMatchObject({ level: 50, code: 'PRINTER_CLOSED', receipt: ['after close'] });
  });

  it('retries unprinted slips on its own after retryMs; keeps at most maxUnprinted, logging the one it drops', async () => {
    const printer = new MemoryReceiptPrinter();
    const { log, records } = recordingLog();
    printer.failWrites = true;
    const slips = slipPrinter(printer, log, { retryMs: 30, maxUnprinted: 2 });
    const [first, second, third] = [1, 2, 3].map((n) => slips.print([`slip ${n}`]));
    await expect(first).rejects.toMatchObject({ code: 'PRINTER_WRITE_FAILED' }); // dropped: the runtime's store still has it
    expect(records.find((r) => /dropped/.test(r.msg))).toMatchObject({ level: 50, receipt: ['slip 1'] });
    printer.failWrites = false;
    await Promise.all([second, third]); // no new slip: the timer prints them
    expect(printer.slips.map((s) => s.slice(1))).toEqual([['slip 2'], ['slip 3']]);
    expect(printer.slips.every((s) => s[0]!.startsWith('REPRINT '))).toBe(true);
    await slips.close();
  });

  it('a slip still unprinted when the printer closes is given up (rejected), so the runtime keeps it for the next start', async () => {
    const printer = new MemoryReceiptPrinter();
    printer.failWrites = true;
    const slips = slipPrinter(printer, recordingLog().log, { retryMs: 60_000 });
    const unprinted = slips.print(['REFUND 4.90 EUR']);
    await waitFor(() => slips.unprinted.length === 1);
    await slips.close();
    await expect(unprinted).rejects.toMatchObject({ code: 'PRINTER_CLOSED' });
  });
});

describe.skipIf(!isSocatAvailable())('openHardware with a receipt printer', () => {
  const posConfig = (printer: Record<string, unknown>, dir = '/tmp'): ReturnType<typeof parseConfig> =>
    parseConfig({
      terminalId: 'pos-1', kind: 'pos', merchantId: 'canteen', dataDir: 'state', keyFile: 'terminal.key', certificateFile: 'terminal.cert.json',
      hub: { url: 'mqtt://127.0.0.1:1', hubKey: KEY, issuerKeys: [KEY] }, nfc: { kind: 'emulated' }, io: { kind: 'virtual' }, pos: {}, printer, log: { level: 'silent' },
    }, dir, {});

  it('sets devices.print to the printer device: the slip reaches it as ESC/POS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-devices-printer-'));
    let hardware: OpenedHardware | undefined;
    try {
      const lp = join(dir, 'lp0');
      writeFileSync(lp, '');
      hardware = await openHardware(posConfig({ path: lp, kind: 'device' }), memoryLog().log);
      await hardware.devices.print!(['POWER LOST — SALE REVERSED', 'REFUND 4.90 EUR']);
      await waitFor(() => decodeSlips(readFileSync(lp)).length === 1);
      expect(decodeSlips(readFileSync(lp))).toEqual([['POWER LOST - SALE REVERSED', 'REFUND 4.90 EUR']]);
    } finally {
      await hardware?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a printer section devices.print stays unset (slips go to print listeners and the log)', async () => {
    const hardware = await openHardware(parseConfig({ ...posConfig({ path: '/dev/usb/lp0' }), printer: undefined }, '/tmp', {}), memoryLog().log);
    try {
      expect(hardware.devices.print).toBeUndefined();
    } finally {
      await hardware.close();
    }
  });

  describe('startTerminal', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-start-printer-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const keys = generateKeyPair();
    writeFileSync(join(dir, 'terminal.key'), `${toHex(keys.secretKey)}\n`, { mode: 0o600 });
    const cert = issueTerminalCertificate(generateKeyPair(), {
      terminalId: 'pos-1', kind: 'pos', merchantId: 'canteen', publicKey: toHex(keys.publicKey), notBefore: Date.now() - 60_000, notAfter: Date.now() + 86_400_000,
    });
    writeFileSync(join(dir, 'terminal.cert.json'), JSON.stringify(cert));

    it('a missing printer path is DEVICE_UNAVAILABLE naming printer.path, before dataDir is created', async () => {
      const missing = join(dir, 'usb', 'lp0');
      const err = await startTerminal(posConfig({ path: missing, kind: 'device' }, dir), { log: memoryLog().log }).then(() => undefined, (e: unknown) => e);
      expect(isStartError(err, 'DEVICE_UNAVAILABLE')).toBe(true);
      expect(err).toMatchObject({ field: 'printer.path', path: missing, message: `printer.path: ${missing} does not exist (receipt printer not connected?)` });
      expect(existsSync(join(dir, 'state'))).toBe(false);
    });

    it('a printer that cannot be opened (/dev/null is no serial port) is DEVICE_UNAVAILABLE [PRINTER_UNAVAILABLE], and the start cleans up', async () => {
      const err = await startTerminal(posConfig({ path: '/dev/null', kind: 'serial' }, dir), { log: memoryLog().log }).then(() => undefined, (e: unknown) => e);
      expect(isStartError(err, 'DEVICE_UNAVAILABLE')).toBe(true);
      expect(err).toMatchObject({ field: 'printer.path', path: '/dev/null' });
      expect((err as Error).message).toContain('[PRINTER_UNAVAILABLE]');
    });
  });
});
