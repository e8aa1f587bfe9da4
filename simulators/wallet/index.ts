export type { ContactlessCard } from './contactless-card.ts';
export { SimulatedWallet, type SimulatedWalletOptions } from './simulated-wallet.ts';
export { SimulatedNfcReader } from './simulated-nfc-reader.ts';
export { WalletApplet, APPLET_VERSION, DECLINE_RECORD_NOT_FOUND, type WalletAppletOptions, type AppletAuthorizeResult } from './wallet-applet.ts';
export { RecordStore, DEFAULT_RECORD_LIMITS, type RecordStoreLimits } from './record-store.ts';
export { createWalletWorld, type WalletWorld } from './wallet-world.ts';
