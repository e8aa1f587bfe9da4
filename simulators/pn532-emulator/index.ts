export { Pn532Emulator, type Pn532EmulatorOptions, type Pn532Faults, type Pn532EmulatorStats } from './pn532-emulator.ts';
export { startEmulatedReader, type EmulatedReader } from './start-emulated-reader.ts';
export { openPtyPair, isSocatAvailable, type PtyPair } from './pty-pair.ts';
