// A small trust world for tests, demos and benchmarks: hub, issuer, one terminal, wallets, offers.
import { createOffer, encodeMessage, generateKeyPair, issueTerminalCertificate, toHex, type Envelope, type KeyPair, type LineItemT } from '../../protocol/index.ts';
import { SimulatedWallet } from './simulated-wallet.ts';

export type WalletWorld = {
  hub: KeyPair;
  issuer: KeyPair;
  terminal: KeyPair;
  terminalCert: Envelope<'terminal.certificate'>;
  newWallet(options?: Partial<Parameters<typeof SimulatedWallet.create>[0]>): SimulatedWallet;
  /** A signed purchase offer from the terminal, as the bytes AUTHORIZE carries. */
  offerBytes(amountMinor: number, lines?: LineItemT[]): Uint8Array;
};

export function createWalletWorld(nowMs = Date.now(), terminalId = 'pos-1', merchantId = 'canteen'): WalletWorld {
  const hub = generateKeyPair();
  const issuer = generateKeyPair();
  const terminal = generateKeyPair();
  const terminalCert = issueTerminalCertificate(hub, {
    terminalId,
    kind: 'pos',
    merchantId,
    publicKey: toHex(terminal.publicKey),
    notBefore: nowMs - 60_000,
    notAfter: nowMs + 365 * 24 * 3600_000,
  });
  return {
    hub,
    issuer,
    terminal,
    terminalCert,
    newWallet: (options = {}) => SimulatedWallet.create({ issuer, trustedHubKeys: [toHex(hub.publicKey)], nowMs, ...options }),
    offerBytes: (amountMinor, lines = []) =>
      encodeMessage(createOffer(terminal, { terminalId, merchantId, purpose: 'purchase', amountMinor, currency: 'EUR', lines, nowMs: Date.now(), terminalCert })),
  };
}
