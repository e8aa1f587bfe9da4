/**
 * Signed purchase requests as a POS terminal sends them (seed 004 claims 8–9): the wallet signs
 * an authorization of the offer, the terminal wraps it in a settlement request it signs itself.
 * Signing uses node:crypto (OpenSSL) so the load generator is not the bottleneck; Ed25519 is
 * deterministic, so the bytes equal protocol's noble `signMessage` (checked in a test).
 */
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import {
  PROTOCOL_VERSION,
  canonicalBytes,
  linesDigest,
  newChallenge,
  newRequestId,
  toHex,
  type Body,
  type Envelope,
  type LineItemT,
  type MessageType,
} from '../../protocol/index.ts';

// PKCS#8 DER prefix of an Ed25519 private key (RFC 8410 §7): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function nodeSigningKey(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
}

export function fastSignMessage<T extends MessageType>(type: T, body: Body<T>, key: KeyObject): Envelope<T> {
  const sig = nodeSign(null, canonicalBytes(type, body), key);
  return { v: PROTOCOL_VERSION, type, body, sig: toHex(sig) } as Envelope<T>;
}

export interface PurchaseParty {
  readonly terminalId: string;
  readonly merchantId: string;
  readonly terminalKey: KeyObject;
  readonly walletPublicKeyHex: string;
  readonly walletKey: KeyObject;
  readonly license: Envelope<'wallet.license'>;
}

export interface PurchaseInput {
  readonly lines: LineItemT[];
  readonly currency: string;
  readonly counter: number;
  readonly nowMs: number;
  readonly requestId?: string;
}

export function makePurchaseRequest(party: PurchaseParty, input: PurchaseInput): { requestId: string; message: Envelope<'settlement.request'>; bytes: Buffer } {
  const amountMinor = input.lines.reduce((sum, l) => sum + l.qty * l.unitMinor, 0);
  const authorization = fastSignMessage(
    'wallet.authorization',
    {
      wallet: party.walletPublicKeyHex,
      terminalId: party.terminalId,
      merchantId: party.merchantId,
      purpose: 'purchase',
      challenge: newChallenge(),
      amountMinor,
      currency: input.currency,
      linesDigest: linesDigest(input.lines),
      time: input.nowMs,
      counter: input.counter,
    },
    party.walletKey,
  );
  const requestId = input.requestId ?? newRequestId();
  const message = fastSignMessage(
    'settlement.request',
    {
      requestId,
      terminalId: party.terminalId,
      time: input.nowMs,
      offline: false,
      op: { type: 'purchase', authorization, license: party.license, lines: input.lines },
    },
    party.terminalKey,
  );
  return { requestId, message, bytes: Buffer.from(JSON.stringify(message)) };
}
