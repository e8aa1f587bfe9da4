// An ESC/POS receipt printer on a serial port (the printer's RS-232 port through a USB-serial
// adapter, a USB printer that enumerates as a CDC-ACM /dev/ttyACM*, the Pi's UART): 8N1, no flow control.
import { SerialPort } from 'serialport';
import { openLinkedPrinter, type LinkedPrinterOptions, type PrinterLink, type ReceiptPrinter } from './receipt-printer.ts';

/**
 * 19200 baud: what the common 58 mm serial printers (CSN-A2 / "mini thermal printer" class) ship
 * with; many others ship 9600, Epson TM-T20/T88 serial interfaces 38400 (their DIP switches /
 * memory switches). The printer's self-test page (hold FEED while switching it on) prints its rate.
 */
export const DEFAULT_PRINTER_BAUD_RATE = 19_200;

export interface SerialReceiptPrinterOptions extends LinkedPrinterOptions {
  path: string;
  baudRate?: number;
}

export const SerialReceiptPrinter = {
  /** Opens the port (`PRINTER_UNAVAILABLE` if it cannot be opened). */
  open(options: SerialReceiptPrinterOptions): Promise<ReceiptPrinter> {
    const { path } = options;
    const baudRate = options.baudRate ?? DEFAULT_PRINTER_BAUD_RATE;
    return openLinkedPrinter(path, async (onLost) => {
      const port = new SerialPort({ path, baudRate, dataBits: 8, parity: 'none', stopBits: 1, rtscts: false, autoOpen: false });
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
      // Unplugged (serialport's 'close' with disconnected: true) or failing: the next slip reopens.
      port.on('error', (err: Error) => onLost(err));
      port.on('close', (err: Error | null) => onLost(err ?? new Error('serial port closed')));
      port.on('data', () => undefined); // nothing is read (a status answer would land here); keep the line drained
      return serialLink(port);
    }, options);
  },
};

function serialLink(port: SerialPort): PrinterLink {
  return {
    write: (bytes) =>
      new Promise<void>((resolve, reject) => {
        if (!port.isOpen) return reject(new Error('serial port not open'));
        // write queues the bytes; drain waits until they left the UART (tcdrain).
        port.write(Buffer.from(bytes), (err) => {
          if (err) return reject(err);
          port.drain((drainErr) => (drainErr ? reject(drainErr) : resolve()));
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        port.removeAllListeners('close');
        port.removeAllListeners('error');
        port.on('error', () => undefined);
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
