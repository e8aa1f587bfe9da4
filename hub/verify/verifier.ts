/**
 * Signature verification as the hub's hot path sees it: asynchronous and batched, so a worker-thread
 * pool can take it off the event loop. `inlineVerifier` runs on the calling thread (tests, small sites).
 */
import { verify } from '../../protocol/index.ts';

export interface VerifyItem {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
}

export interface SignatureVerifier {
  verifyMany(items: readonly VerifyItem[]): Promise<boolean[]>;
  close(): Promise<void>;
}

export const inlineVerifier: SignatureVerifier = {
  async verifyMany(items) {
    return items.map((i) => verify(i.signature, i.message, i.publicKey));
  },
  async close() {},
};
