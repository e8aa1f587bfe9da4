import { describeReceiptPrinterContract } from '../../hardware/printer/receipt-printer.contract.ts';
import { MemoryReceiptPrinter } from './memory-receipt-printer.ts';

describeReceiptPrinterContract('in-memory', async () => {
  const printer = new MemoryReceiptPrinter();
  return {
    printer,
    received: () => printer.slips,
    breakLink: async () => void (printer.failWrites = true),
    restoreLink: async () => void (printer.failWrites = false),
    close: () => printer.close(),
  };
});
