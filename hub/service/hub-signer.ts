/**
 * The hub's signature on what it sends (seed 003 second signature), for the hot path: the canonical
 * text comes from the request's CanonicalMemo (a result reuses its statement's), and the wire bytes
 * are written from that same text. Same signature bytes as protocol's `signMessage` (Ed25519 is
 * deterministic; tested); unlike it, no schema re-parse of the hub's own output — the service's
 * tests decode every result with the protocol. Signing is protocol's `sign`: libsodium, ~18 µs
 * here, cheaper inline than a hop to a thread.
 */
import { PROTOCOL_VERSION, sign, toHex, type Body, type Envelope, type KeyPair, type MessageType } from '../../protocol/index.ts';
import type { CanonicalMemo } from './canonical-memo.ts';

export class HubSigner {
  readonly #secretKey: Uint8Array;

  constructor(keyPair: KeyPair) {
    if (keyPair.secretKey.length !== 32) throw new TypeError('HubSigner: keyPair.secretKey must be 32 bytes');
    this.#secretKey = Uint8Array.from(keyPair.secretKey);
  }

  sign<T extends MessageType>(type: T, body: Body<T>, memo: CanonicalMemo): Envelope<T> {
    const sig = toHex(sign(memo.bytes(type, body), this.#secretKey));
    return { v: PROTOCOL_VERSION, type, body, sig } as Envelope<T>;
  }

  /** The envelope as JSON (v, type, body, sig), the body in its canonical text. */
  encode(envelope: Envelope<MessageType>, memo: CanonicalMemo): Uint8Array {
    return Buffer.from(`{"v":${envelope.v},"type":${JSON.stringify(envelope.type)},"body":${memo.json(envelope.body)},"sig":${JSON.stringify(envelope.sig)}}`);
  }
}
