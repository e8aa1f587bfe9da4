/**
 * Signature work as the hub's hot path sees it: asynchronous and batched, so a worker-thread
 * pool can take it off the event loop. `inlineVerifier` runs on the calling thread (tests, small sites).
 */
import { verify } from '../../protocol/index.ts';
import type { ResultSigner } from './result-signing.ts';

export interface VerifyItem {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
}

export interface SignatureVerifier {
  verifyMany(items: readonly VerifyItem[]): Promise<boolean[]>;
  /** Signs hub results with this key on the verifier's threads too, where it has any. */
  resultSigner?(secretKey: Uint8Array): ResultSigner;
  close(): Promise<void>;
}

export const inlineVerifier: SignatureVerifier = {
  async verifyMany(items) {
    return items.map((i) => verify(i.signature, i.message, i.publicKey));
  },
  async close() {},
};
