/**
 * The hub's signature on what it sends (seed 003 second signature), for the hot path: the key is
 * imported into OpenSSL once, the canonical text comes from the request's CanonicalMemo (a result
 * reuses its statement's), and the wire bytes are written from that same text. Same signature
 * bytes as protocol's `signMessage` (Ed25519 is deterministic; tested); unlike it, no schema
 * re-parse of the hub's own output — the service's tests decode every result with the protocol.
 */
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { PROTOCOL_VERSION, toHex, type Body, type Envelope, type KeyPair, type MessageType } from '../../protocol/index.ts';
import type { CanonicalMemo } from './canonical-memo.ts';

// RFC 8410 §7: PKCS#8 DER of an Ed25519 private key is this prefix and the 32-byte seed.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class HubSigner {
  readonly #key: KeyObject;
  /** Signatures on the thread pool now (plus one token for an inline signature this microtask). */
  #pooled = 0;

  constructor(keyPair: KeyPair) {
    if (keyPair.secretKey.length !== 32) throw new TypeError('HubSigner: keyPair.secretKey must be 32 bytes');
    this.#key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, keyPair.secretKey]), format: 'der', type: 'pkcs8' });
  }

  sign<T extends MessageType>(type: T, body: Body<T>, memo: CanonicalMemo): Envelope<T> {
    const sig = toHex(nodeSign(null, memo.bytes(type, body), this.#key));
    return { v: PROTOCOL_VERSION, type, body, sig } as Envelope<T>;
  }

  /**
   * The same signature, computed on libuv's thread pool (node:crypto's callback form) while other
   * signatures are being computed there — under load the event loop then decodes, commits and
   * publishes while OpenSSL signs (~50 µs of main-thread CPU less per signature) — and inline
   * when none is: at low load a thread hop (two wake-ups) costs more latency than the signature.
   */
  async signAsync<T extends MessageType>(type: T, body: Body<T>, memo: CanonicalMemo): Promise<Envelope<T>> {
    if (this.#pooled === 0) {
      this.#pooled++; // the next ones in this turn go to the pool
      queueMicrotask(() => this.#pooled--);
      return this.sign(type, body, memo);
    }
    const bytes = memo.bytes(type, body);
    this.#pooled++;
    try {
      const sig = await new Promise<Buffer>((resolve, reject) => nodeSign(null, bytes, this.#key, (err, out) => (err ? reject(err) : resolve(out))));
      return { v: PROTOCOL_VERSION, type, body, sig: toHex(sig) } as Envelope<T>;
    } finally {
      this.#pooled--;
    }
  }

  /** The envelope as JSON (v, type, body, sig), the body in its canonical text. */
  encode(envelope: Envelope<MessageType>, memo: CanonicalMemo): Uint8Array {
    return Buffer.from(`{"v":${envelope.v},"type":${JSON.stringify(envelope.type)},"body":${memo.json(envelope.body)},"sig":${JSON.stringify(envelope.sig)}}`);
  }
}
