// An ESC/POS receipt printer behind a character device: a USB printer-class printer through the
// kernel's usblp driver (/dev/usb/lp0), or a parallel port (/dev/lp0). Written like a file.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { openLinkedPrinter, type LinkedPrinterOptions, type PrinterLink, type ReceiptPrinter } from './receipt-printer.ts';

export interface DeviceReceiptPrinterOptions extends LinkedPrinterOptions {
  path: string;
}

export const DeviceReceiptPrinter = {
  /**
   * Opens the device write-only (`PRINTER_UNAVAILABLE` if it cannot be). Never creates it: without
   * O_CREAT a missing /dev/usb/lp0 is ENOENT, not a new regular file in /dev/usb.
   */
  open(options: DeviceReceiptPrinterOptions): Promise<ReceiptPrinter> {
    const { path } = options;
    return openLinkedPrinter(path, async () => deviceLink(await open(path, constants.O_WRONLY | constants.O_NOCTTY)), options);
  },
};

function deviceLink(handle: FileHandle): PrinterLink {
  return {
    async write(bytes) {
      // usblp takes a slip in pieces: write until every byte is taken.
      let offset = 0;
      while (offset < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
        if (bytesWritten <= 0) throw new Error('the device took no bytes');
        offset += bytesWritten;
      }
    },
    close: () => handle.close(),
  };
}
