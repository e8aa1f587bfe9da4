/**
 * Port to the external card authorizer (seed 000 claims 4–5, seed 004 claim 36). The sealed card
 * is forwarded as it came: only the authorizer holds the X25519 key that opens it.
 */
import type { SealedCardT } from '../../protocol/index.ts';

export interface CardAuthorizationRequest {
  /** Bound into the sealed card's AEAD: a card sealed for one request can't pay another. */
  readonly requestId: string;
  readonly sealedCard: SealedCardT;
  readonly amountMinor: number;
  readonly currency: string;
}

export type CardAuthorization = { approved: true; authCode: string } | { approved: false; reason: string };

export interface CardAuthorizer {
  /** X25519 public key terminals seal card numbers to. */
  readonly sealingPublicKey: Uint8Array;
  /** Idempotent by requestId: a retry gets the first answer, the card is charged once. */
  authorize(request: CardAuthorizationRequest): Promise<CardAuthorization>;
}
