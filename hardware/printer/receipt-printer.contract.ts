// One contract for every ReceiptPrinter: the serial printer on a socat pty, the device printer on
// a FIFO (both read back byte by byte on the other end), and the in-memory printer.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHardwareError } from '../errors.ts';
import { decodePc437, type ReceiptPrinter } from './receipt-printer.ts';

export type ReceiptPrinterHarness = {
  printer: ReceiptPrinter;
  /** The slips that reached the paper so far (for a real printer: decoded from the bytes on the other end). */
  received(): string[][];
  /** The link fails (the USB cable pulled, the reading end gone). */
  breakLink(): Promise<void>;
  /** The link is back (plugged in again). */
  restoreLink(): Promise<void>;
  close(): Promise<void>;
};

/**
 * Decodes what a printer received into slips, strictly: every slip must be ESC @, ESC t 0,
 * ESC R 0, text lines ending in LF, ESC d n and GS V 66 0; any other control byte (one that
 * leaked from a slip's text) throws. A slip not cut yet is not returned.
 */
export function decodeSlips(bytes: Uint8Array): string[][] {
  const slips: string[][] = [];
  const HEAD = [0x1b, 0x40, 0x1b, 0x74, 0x00, 0x1b, 0x52, 0x00];
  let i = 0;
  while (i < bytes.length) {
    if (bytes.length - i < HEAD.length) break;
    for (const [k, b] of HEAD.entries()) if (bytes[i + k] !== b) throw new Error(`slip at byte ${i} does not start with ESC @, ESC t 0, ESC R 0`);
    let j = i + HEAD.length;
    const lines: string[] = [];
    let line: number[] = [];
    let cut = false;
    while (j < bytes.length && !cut) {
      const b = bytes[j]!;
      if (b === 0x0a) {
        lines.push(decodePc437(Uint8Array.from(line)));
        line = [];
        j++;
      } else if (b >= 0x20 && b !== 0x7f) {
        line.push(b);
        j++;
      } else if (b === 0x1b && bytes[j + 1] === 0x64 && line.length === 0) {
        if (j + 2 >= bytes.length) break;
        j += 3;
        if (j + 4 > bytes.length) break;
        if (bytes[j] !== 0x1d || bytes[j + 1] !== 0x56 || bytes[j + 2] !== 0x42 || bytes[j + 3] !== 0x00) throw new Error(`no GS V 66 0 after the feed at byte ${j}`);
        j += 4;
        cut = true;
      } else {
        throw new Error(`control byte 0x${b.toString(16)} inside a slip at byte ${j}`);
      }
    }
    if (!cut) break;
    slips.push(lines);
    i = j;
  }
  return slips;
}

async function eventually(check: () => void, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export function describeReceiptPrinterContract(name: string, make: () => Promise<ReceiptPrinterHarness>): void {
  describe(`ReceiptPrinter contract: ${name}`, () => {
    let h: ReceiptPrinterHarness;
    beforeEach(async () => {
      h = await make();
    });
    afterEach(async () => {
      await h.close();
    });

    it('prints a slip\'s lines in order, as PC437 can show them ("—" as "-", "€" as "EUR", ü kept)', async () => {
      await h.printer.print(['POWER LOST — SALE REVERSED', 'TOTAL 4.90 EUR', 'Müsli 2 × 1.20 €', '“ok” … Łódź']);
      await eventually(() => expect(h.received()).toEqual([['POWER LOST - SALE REVERSED', 'TOTAL 4.90 EUR', 'Müsli 2 x 1.20 EUR', '"ok" ... ?ódz']]));
    });

    it('never passes a control character on (an ESC in a slip\'s text would be a printer command)', async () => {
      await h.printer.print(['a\x1b@b', 'x\x1dVBy\x07', 'tab\there', 'two\nlines']);
      await eventually(() => expect(h.received()).toEqual([['a?@b', 'x?VBy?', 'tab here', 'two', 'lines']]));
    });

    it('prints slips given at once whole and in call order', async () => {
      const slips = Array.from({ length: 5 }, (_, n) => [`slip ${n}`, `${'='.repeat(32)}`, `TOTAL ${n}.00 EUR`]);
      await Promise.all(slips.map((s) => h.printer.print(s)));
      await eventually(() => expect(h.received()).toEqual(slips));
    });

    it('fails a slip on a broken link with PRINTER_WRITE_FAILED, and prints the next once the link is back', async () => {
      await h.printer.print(['before']);
      await eventually(() => expect(h.received()).toEqual([['before']]));
      await h.breakLink();
      const failed = await h.printer.print(['lost']).then(() => undefined, (err: unknown) => err);
      expect(isHardwareError(failed, 'PRINTER_WRITE_FAILED')).toBe(true);
      await h.restoreLink();
      await h.printer.print(['after']);
      await eventually(() => expect(h.received()).toEqual([['before'], ['after']]));
    });

    it('prints what it accepted before close(), then refuses with PRINTER_CLOSED', async () => {
      const last = h.printer.print(['last one']);
      await h.printer.close();
      await last;
      await eventually(() => expect(h.received()).toEqual([['last one']]));
      await expect(h.printer.print(['too late'])).rejects.toMatchObject({ code: 'PRINTER_CLOSED' });
    });
  });
}
