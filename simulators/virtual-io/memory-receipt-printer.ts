// The simulated receipt printer: keeps each slip as the paper would show it (PC437, "—" as "-"),
// with a fault switch for a broken link. Passes hardware/printer/receipt-printer.contract.ts.
import { HardwareError } from '../../hardware/errors.ts';
import { printableLine, type ReceiptPrinter } from '../../hardware/printer/receipt-printer.ts';

export class MemoryReceiptPrinter implements ReceiptPrinter {
  /** Every slip printed, oldest first, as the paper shows it. */
  readonly slips: string[][] = [];
  /** While true, every print fails with PRINTER_WRITE_FAILED (an unplugged or jammed printer). */
  failWrites = false;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  print(lines: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new HardwareError('PRINTER_CLOSED'));
    const printed = lines.flatMap((l) => l.split(/\r\n|\r|\n/)).map(printableLine);
    const run = this.queue.then(async () => {
      await new Promise((r) => setImmediate(r)); // a device takes its time: prints overlap as on a link
      if (this.failWrites) throw new HardwareError('PRINTER_WRITE_FAILED', 'simulated printer link failure');
      this.slips.push(printed);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
  }
}
