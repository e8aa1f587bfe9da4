/**
 * Port to the external card authorizer (seed 000 claims 4–5, seed 004 claim 36). The sealed card
 * is forwarded as it came: only the authorizer holds the X25519 key that opens it.
 *
 * Idempotency is by request id AND content, as at an acquirer: the request id is the idempotency
 * key, and what it authorized (amount, currency, the wallet credited, the sealed card) is bound to
 * it. A retry with the same content gets the first answer and charges nothing more; the same id
 * with other content is refused with CardAuthorizationMismatchError and charges nothing. Without
 * that binding a terminal re-sending a request id whose first answer was lost (the hub answered
 * INTERNAL, nothing stored) with a larger amount or another wallet got the first "approved" replayed,
 * and the hub credited what was never charged.
 *
 * A real authorizer keeps these records durably (at least as long as a terminal may retry: the
 * hub keeps results REPLAY_STATE_RETENTION_MS), so a retry after a hub crash between the charge
 * and the ledger's commit gets the approval replayed and the ledger credits it then.
 */
import type { SealedCardT } from '../../protocol/index.ts';

/** What a card authorization is bound to, besides the card itself. */
export interface CardAuthorizationBinding {
  /** The idempotency key; also bound into the sealed card's AEAD: a card sealed for one request can't pay another. */
  readonly requestId: string;
  readonly amountMinor: number;
  readonly currency: string;
  /** The wallet the top-up credits (the authorization's reference). */
  readonly wallet: string;
}

export interface CardAuthorizationRequest extends CardAuthorizationBinding {
  readonly sealedCard: SealedCardT;
}

export type CardAuthorization = { approved: true; authCode: string } | { approved: false; reason: string };

/** Why the hub gives an authorization back (the reversal's reason, for the acquirer's records). */
export type CardVoidReason =
  /** The ledger declined the credit (e.g. balance limit): the money can't land. */
  | 'ledger_declined'
  /** The ledger failed before logging the credit (queue full, closed, store failure before commit). */
  | 'ledger_failed'
  /** The authorizer's answer was lost (timeout, connection reset): a timeout reversal. */
  | 'no_answer';

/** The request id was already used for an authorization of other content (amount, currency, wallet or card). */
export class CardAuthorizationMismatchError extends Error {
  readonly code = 'idempotency_mismatch' as const;
  readonly requestId: string;
  constructor(requestId: string, detail = 'the request id was already used with other content') {
    super(`card authorization ${requestId}: ${detail}`);
    this.name = 'CardAuthorizationMismatchError';
    this.requestId = requestId;
  }
}

export interface CardAuthorizer {
  /** X25519 public key terminals seal card numbers to. */
  readonly sealingPublicKey: Uint8Array;
  /**
   * Idempotent by requestId for the same content: a retry gets the first answer, the card is
   * charged once. Other content under a used requestId: rejects with
   * CardAuthorizationMismatchError (an adapter may throw any error whose `code` is
   * 'idempotency_mismatch'; the hub answers DUPLICATE_MISMATCH), charges nothing. An authorization voided before gets
   * `{ approved: false, reason: 'voided' }` (a new attempt needs a new request id).
   */
  authorize(request: CardAuthorizationRequest): Promise<CardAuthorization>;
  /**
   * Reverses the authorization made under `binding.requestId` (the charge is released in full).
   * Idempotent: a second void does nothing more. A void of a request id never authorized (the
   * authorization request was lost on its way) is remembered, so the authorization arriving late
   * is declined rather than charged. Rejects with CardAuthorizationMismatchError when the binding
   * names another amount, currency or wallet than the authorization, and voids nothing then.
   */
  void(binding: CardAuthorizationBinding, reason: CardVoidReason): Promise<void>;
}
