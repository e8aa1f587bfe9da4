// The device-path printer (/dev/usb/lp0 on a Pi) written to a FIFO read by the test, and to a
// plain file; a missing device is PRINTER_UNAVAILABLE and is never created.
import { spawnSync } from 'node:child_process';
import { constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceReceiptPrinter } from './device-receipt-printer.ts';
import { decodeSlips, describeReceiptPrinterContract, type ReceiptPrinterHarness } from './receipt-printer.contract.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tapsettle-lp-'));
}

describe('DeviceReceiptPrinter', () => {
  it('is PRINTER_UNAVAILABLE for a missing device, and does not create it', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'lp0');
      await expect(DeviceReceiptPrinter.open({ path })).rejects.toMatchObject({ code: 'PRINTER_UNAVAILABLE', cause: { code: 'ENOENT' } });
      expect(existsSync(path)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes a slip\'s exact ESC/POS bytes to the device (a plain file here), slip after slip', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'lp0');
      writeFileSync(path, '');
      const printer = await DeviceReceiptPrinter.open({ path, feedLines: 5 });
      await printer.print(['ref r-1 — 1 x cola @ 2.90 EUR']);
      await printer.print(['second']);
      await printer.close();
      const bytes = readFileSync(path);
      const slip1 = Buffer.concat([
        Buffer.from('1b401b74001b5200', 'hex'),
        Buffer.from('ref r-1 - 1 x cola @ 2.90 EUR\n', 'latin1'),
        Buffer.from('1b64051d564200', 'hex'),
      ]);
      expect(bytes.subarray(0, slip1.length).toString('hex')).toBe(slip1.toString('hex'));
      expect(decodeSlips(bytes)).toEqual([['ref r-1 - 1 x cola @ 2.90 EUR'], ['second']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const noMkfifo = spawnSync('mkfifo', ['--version'], { stdio: 'ignore' }).status !== 0;

if (!noMkfifo) {
  describeReceiptPrinterContract('device path (a FIFO read by the test)', async (): Promise<ReceiptPrinterHarness> => {
    const dir = tempDir();
    const fifo = join(dir, 'lp0');
    if (spawnSync('mkfifo', [fifo]).status !== 0) throw new Error('mkfifo failed');
    const chunks: Buffer[] = [];
    let reader: Socket | undefined;
    // The reading end opened O_RDWR (Linux: never blocks, never sees EOF) and read through libuv's
    // pipe handle, so closing it is immediate (an fs read stream would wait on a blocked read).
    const attach = (): void => {
      const r = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('error', () => undefined);
      reader = r;
    };
    const detach = async (): Promise<void> => {
      const r = reader;
      reader = undefined;
      if (r && !r.destroyed) await new Promise<void>((resolve) => r.once('close', () => resolve()).destroy());
    };
    attach(); // a FIFO's writer waits in open() until a reader is there
    const printer = await DeviceReceiptPrinter.open({ path: fifo, writeTimeoutMs: 2000 });
    return {
      printer,
      received: () => decodeSlips(Buffer.concat(chunks)),
      breakLink: detach, // the writer's next write: EPIPE
      restoreLink: async () => attach(),
      close: async () => {
        await printer.close();
        await detach();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}
