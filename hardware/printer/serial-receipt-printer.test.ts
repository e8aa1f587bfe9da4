// The serial printer through the real serialport binding on a socat pty pair; the test reads the
// printer's end of the pair and checks the exact ESC/POS bytes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { describe, expect, it } from 'vitest';
import { isSocatAvailable, openPtyPair, type PtyPair } from '../../simulators/pn532-emulator/pty-pair.ts';
import { decodeSlips, describeReceiptPrinterContract, type ReceiptPrinterHarness } from './receipt-printer.contract.ts';
import { DEFAULT_PRINTER_BAUD_RATE, SerialReceiptPrinter } from './serial-receipt-printer.ts';

const noSocat = !isSocatAvailable();

/** The printer's side of a pty pair, collecting every byte the host sends; unplug/plug like a USB adapter. */
async function ptyPrinterEnd(): Promise<{ hostPath: string; bytes(): Buffer; unplug(): Promise<void>; plug(): Promise<void>; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tapsettle-printer-'));
  const devicePath = join(dir, 'printer-device');
  const hostPath = join(dir, 'printer-host');
  const chunks: Buffer[] = [];
  let pair: PtyPair | undefined;
  let port: SerialPort | undefined;
  const plug = async (): Promise<void> => {
    pair = await openPtyPair(devicePath, hostPath);
    const p = new SerialPort({ path: devicePath, baudRate: 19_200, autoOpen: false });
    await new Promise<void>((resolve, reject) => p.open((err) => (err ? reject(err) : resolve())));
    p.on('data', (c: Buffer) => chunks.push(c));
    p.on('error', () => undefined);
    port = p;
  };
  const unplug = async (): Promise<void> => {
    const p = port;
    port = undefined;
    if (p?.isOpen) await new Promise<void>((resolve) => p.close(() => resolve()));
    await pair?.close();
    pair = undefined;
  };
  await plug();
  return {
    hostPath,
    bytes: () => Buffer.concat(chunks),
    unplug,
    plug,
    async close() {
      await unplug();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('SerialReceiptPrinter: a port that is not there', () => {
  it('is PRINTER_UNAVAILABLE at open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapsettle-printer-'));
    try {
      await expect(SerialReceiptPrinter.open({ path: join(dir, 'ttyUSB9') })).rejects.toMatchObject({ code: 'PRINTER_UNAVAILABLE' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(noSocat)('SerialReceiptPrinter on a pty', () => {
  it('sends exactly ESC @, ESC t 0, ESC R 0, the PC437 lines, ESC d 3 and GS V 66 0, at the configured baud rate', async () => {
    const end = await ptyPrinterEnd();
    const printer = await SerialReceiptPrinter.open({ path: end.hostPath, baudRate: 9600 });
    try {
      // The line settings serialport made on the host end (tcsetattr), as the kernel has them.
      const stty = spawnSync('stty', ['-F', end.hostPath, 'speed'], { encoding: 'utf8' });
      if (stty.status === 0) expect(stty.stdout.trim()).toBe('9600');
      await printer.print(['POWER LOST — SALE REVERSED', 'TOTAL 4.90 EUR', 'Müsli']);
      const expected = Buffer.concat([
        Buffer.from([0x1b, 0x40, 0x1b, 0x74, 0x00, 0x1b, 0x52, 0x00]),
        Buffer.from('POWER LOST - SALE REVERSED\nTOTAL 4.90 EUR\nM', 'latin1'),
        Buffer.from([0x81]), // ü in PC437
        Buffer.from('sli\n', 'latin1'),
        Buffer.from([0x1b, 0x64, 0x03, 0x1d, 0x56, 0x42, 0x00]),
      ]);
      const deadline = Date.now() + 3000;
      while (end.bytes().length < expected.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(end.bytes().toString('hex')).toBe(expected.toString('hex'));
    } finally {
      await printer.close();
      await end.close();
    }
  });
});

describe.skipIf(noSocat || spawnSync('stty', ['--version'], { stdio: 'ignore' }).status !== 0)('SerialReceiptPrinter line settings', () => {
  it('opens at 19200 baud when no rate is given (DEFAULT_PRINTER_BAUD_RATE)', async () => {
    const end = await ptyPrinterEnd();
    const printer = await SerialReceiptPrinter.open({ path: end.hostPath });
    try {
      expect(spawnSync('stty', ['-F', end.hostPath, 'speed'], { encoding: 'utf8' }).stdout.trim()).toBe(String(DEFAULT_PRINTER_BAUD_RATE));
      expect(DEFAULT_PRINTER_BAUD_RATE).toBe(19_200);
    } finally {
      await printer.close();
      await end.close();
    }
  });
});

if (!noSocat) {
  describeReceiptPrinterContract('serial (ESC/POS over serialport on a pty)', async (): Promise<ReceiptPrinterHarness> => {
    const end = await ptyPrinterEnd();
    const printer = await SerialReceiptPrinter.open({ path: end.hostPath, writeTimeoutMs: 2000 });
    return {
      printer,
      received: () => decodeSlips(end.bytes()),
      breakLink: () => end.unplug(),
      restoreLink: () => end.plug(),
      close: async () => {
        await printer.close();
        await end.close();
      },
    };
  });
}
