// Public API of the hardware layer (drivers behind small interfaces).
export { HardwareError, HARDWARE_ERROR_CODES, isHardwareError, type HardwareErrorCode } from './errors.ts';
export { onTap, type NfcReader, type NfcSession } from './nfc/nfc-reader.ts';
export { Pn532NfcReader, type Pn532NfcReaderOptions } from './nfc/pn532-nfc-reader.ts';
export { Pn532Driver, type Pn532DriverOptions } from './pn532/pn532-driver.ts';
export type { BitRateKbps } from './pn532/commands.ts';
export { WalletCard, type AuthorizeResult, type WalletRecord, type WalletCardOptions, type ReadOptions, type TapInfo } from './wallet-apdu/wallet-card.ts';
export { WALLET_AID, RecordKind, Sw, type RecordKindName } from './wallet-apdu/apdu.ts';
export { GateController, DEFAULT_GATE_TIMING, type Gate, type GateHardware, type GateTiming, type GateDirection, type PassageResult } from './actuators/gate.ts';
export { VendingController, DEFAULT_DISPENSE_TIMEOUT_MS, type Vending, type VendingHardware, type DispenseResult } from './actuators/vending.ts';
export { PosController, ConsoleDisplay, DISPLAY_WIDTH, type Pos, type PosHardware, type PosStatus, type BeepPattern, type DisplayLine } from './actuators/pos.ts';
export { openJ5Board, DEFAULT_HEARTBEAT_MS, type J5Board, type J5BoardOptions } from './actuators/j5-board.ts';
export { LinkWatch, type HardwareLink } from './actuators/board-link.ts';
export { createJ5Gate, type J5GatePins } from './actuators/j5-gate.ts';
export { createJ5Vending, type J5VendingPins } from './actuators/j5-vending.ts';
export { createJ5Pos, type J5PosPins } from './actuators/j5-pos.ts';
export {
  encodeSlip, encodeLine, printableLine, DEFAULT_FEED_LINES, DEFAULT_WRITE_TIMEOUT_MS, type ReceiptPrinter, type LinkedPrinterOptions,
} from './printer/receipt-printer.ts';
export { SerialReceiptPrinter, DEFAULT_PRINTER_BAUD_RATE, type SerialReceiptPrinterOptions } from './printer/serial-receipt-printer.ts';
export { DeviceReceiptPrinter, type DeviceReceiptPrinterOptions } from './printer/device-receipt-printer.ts';
