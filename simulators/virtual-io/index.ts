export { VirtualIo, MODES, type PinWrite, type VirtualIoOptions } from './virtual-io.ts';
export { GateWalker, VendingMechanics, attachGateWalker, attachVendingMechanics, type Visitor, type SlotBehaviour } from './sensor-sims.ts';
export {
  MemoryGateHardware, MemoryVendingHardware, MemoryPosHardware, MemoryDisplay, createMemoryGate, createMemoryVending, createMemoryPos,
} from './memory-actuators.ts';
export { FirmataBoardEmulator, startEmulatedFirmataBoard, type EmulatedFirmataBoard } from './firmata-board-emulator.ts';
export { MemoryReceiptPrinter } from './memory-receipt-printer.ts';
