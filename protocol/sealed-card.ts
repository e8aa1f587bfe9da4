/**
 * Card top-up (seed 000 claims 4–5): the card number is sealed to the card authorizer's X25519
 * public key (ephemeral-static ECDH → HKDF-SHA256 → ChaCha20-Poly1305), so neither terminal nor
 * hub ever sees it in clear. The request id is bound as associated data so a sealed card can't be
 * replayed into a different request.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concatBytes, fromHex, toHex, utf8 } from './hex.ts';

export interface SealedCardT {
  ephemeralPublicKey: string;
  nonce: string;
  ciphertext: string;
}

export interface CardDetails {
  pan: string;
  expiry: string;
}

const INFO = utf8('tapsettle/1/sealed-card');

export function generateSealingKeyPair(): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

function keyFor(shared: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  return hkdf(sha256, shared, concatBytes(ephemeralPublic, recipientPublic), INFO, 32);
}

export function sealCard(card: CardDetails, recipientPublicKey: Uint8Array, requestId: string): SealedCardT {
  const eph = x25519.utils.randomSecretKey();
  const ephPub = x25519.getPublicKey(eph);
  const key = keyFor(x25519.getSharedSecret(eph, recipientPublicKey), ephPub, recipientPublicKey);
  const nonce = randomBytes(12);
  const ciphertext = chacha20poly1305(key, nonce, utf8(requestId)).encrypt(utf8(JSON.stringify(card)));
  return { ephemeralPublicKey: toHex(ephPub), nonce: toHex(nonce), ciphertext: toHex(ciphertext) };
}

/** Opens a sealed card; null when it was sealed to another key, altered, or bound to another request. */
export function openCard(sealed: SealedCardT, recipient: { secretKey: Uint8Array; publicKey: Uint8Array }, requestId: string): CardDetails | null {
  try {
    const ephPub = fromHex(sealed.ephemeralPublicKey);
    const key = keyFor(x25519.getSharedSecret(recipient.secretKey, ephPub), ephPub, recipient.publicKey);
    const plain = chacha20poly1305(key, fromHex(sealed.nonce), utf8(requestId)).decrypt(fromHex(sealed.ciphertext));
    const card = JSON.parse(new TextDecoder().decode(plain)) as CardDetails;
    return typeof card.pan === 'string' && typeof card.expiry === 'string' ? card : null;
  } catch {
    return null;
  }
}
