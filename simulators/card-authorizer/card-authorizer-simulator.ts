/**
 * In-process stand-in for a card-payment authorizer: opens the sealed card with its X25519 key
 * (protocol openCard), declines the test PANs it was told to and cards failing the Luhn check,
 * approves the rest. Idempotent by request id, like a real acquirer's idempotency key, and bound
 * to what was authorized: the same id with another amount, currency, wallet or card is
 * refused (CardAuthorizationMismatchError). Voids (reversals) are idempotent; a voided
 * authorization is answered `voided` from then on. Records are kept in memory only: the hub's
 * default authorizer forgets them on restart (a real acquirer keeps them durably).
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { createHash } from 'node:crypto';
import { generateSealingKeyPair, openCard, type CardDetails } from '../../protocol/index.ts';
import {
  CardAuthorizationMismatchError,
  type CardAuthorization,
  type CardAuthorizationBinding,
  type CardAuthorizationRequest,
  type CardAuthorizer,
  type CardVoidReason,
} from '../../hub/service/card-authorizer.ts';
import type { AcquirerReportT } from '../../hub/clearing/acquirer-report.ts';

/** Stripe-style test numbers: both pass Luhn; the second is declined by default. */
export const TEST_PAN_APPROVED = '4242424242424242';
export const TEST_PAN_DECLINED = '4000000000000002';

export function luhnValid(pan: string): boolean {
  if (!/^\d{12,19}$/.test(pan)) return false;
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = pan.charCodeAt(pan.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

export interface CardAuthorizerSimulatorOptions {
  /** X25519 secret; a fresh one when absent. */
  readonly secretKey?: Uint8Array;
  readonly declinePans?: readonly string[];
  /** Largest amount approved per authorization. */
  readonly maxAmountMinor?: number;
}

/** One idempotency key's record: what it was bound to and its answer. */
interface Attempt {
  /** Amount, currency and wallet. */
  readonly binding: string;
  /** Binding and card (its number's hash; a re-sealed same card matches); null for a void that came first. */
  readonly content: string | null;
  readonly answer: CardAuthorization;
  voided: boolean;
}

function bindingKey(b: CardAuthorizationBinding): string {
  return JSON.stringify([b.amountMinor, b.currency, b.wallet]);
}

function contentKey(b: CardAuthorizationBinding, card: CardDetails | null): string {
  const cardHash = card ? createHash('sha256').update(`card:${card.pan}:${card.expiry}`).digest('hex') : 'unreadable';
  return JSON.stringify([bindingKey(b), cardHash]);
}

export class CardAuthorizerSimulator implements CardAuthorizer {
  readonly sealingPublicKey: Uint8Array;
  readonly #secretKey: Uint8Array;
  readonly #decline: Set<string>;
  readonly #maxAmountMinor: number;
  readonly #attempts = new Map<string, Attempt>();
  /** Approved authorizations, for tests and the dashboard (last 4 digits only). */
  readonly approvals: Array<{ requestId: string; last4: string; amountMinor: number; currency: string; wallet: string; authCode: string }> = [];
  /** Approved authorizations given back (reversed in full), in order. */
  readonly voids: Array<{ requestId: string; amountMinor: number; currency: string; reason: CardVoidReason }> = [];

  constructor(options: CardAuthorizerSimulatorOptions = {}) {
    this.#secretKey = options.secretKey ?? generateSealingKeyPair().secretKey;
    this.sealingPublicKey = x25519.getPublicKey(this.#secretKey);
    this.#decline = new Set(options.declinePans ?? [TEST_PAN_DECLINED]);
    this.#maxAmountMinor = options.maxAmountMinor ?? 1_000_000;
  }

  async authorize(req: CardAuthorizationRequest): Promise<CardAuthorization> {
    const card = openCard(req.sealedCard, { secretKey: this.#secretKey, publicKey: this.sealingPublicKey }, req.requestId);
    const content = contentKey(req, card);
    const known = this.#attempts.get(req.requestId);
    if (known) {
      if (known.content !== null ? known.content !== content : known.binding !== bindingKey(req)) throw new CardAuthorizationMismatchError(req.requestId);
      return known.voided ? { approved: false, reason: 'voided' } : known.answer;
    }
    const answer = this.#decide(req, card);
    this.#attempts.set(req.requestId, { binding: bindingKey(req), content, answer, voided: false });
    return answer;
  }

  async void(binding: CardAuthorizationBinding, reason: CardVoidReason): Promise<void> {
    const known = this.#attempts.get(binding.requestId);
    if (!known) {
      // The authorization may still be on its way: it is declined when it arrives.
      this.#attempts.set(binding.requestId, { binding: bindingKey(binding), content: null, answer: { approved: false, reason: 'voided' }, voided: true });
      return;
    }
    if (known.binding !== bindingKey(binding)) throw new CardAuthorizationMismatchError(binding.requestId, 'the void names another amount, currency or wallet');
    if (known.voided) return;
    known.voided = true;
    if (known.answer.approved) this.voids.push({ requestId: binding.requestId, amountMinor: binding.amountMinor, currency: binding.currency, reason });
  }

  /** The acquirer's settlement report (hub/clearing/acquirer-report.ts): every approval not voided, so far. */
  settlementReport(): AcquirerReportT {
    const voided = new Set(this.voids.map((v) => v.requestId));
    return {
      charges: this.approvals
        .filter((a) => !voided.has(a.requestId))
        .map(({ requestId, amountMinor, currency, wallet, authCode }) => ({ requestId, amountMinor, currency, wallet, authCode })),
    };
  }

  #decide(req: CardAuthorizationRequest, card: CardDetails | null): CardAuthorization {
    if (!card) return { approved: false, reason: 'unreadable' };
    if (!luhnValid(card.pan)) return { approved: false, reason: 'invalid_number' };
    if (this.#decline.has(card.pan)) return { approved: false, reason: 'do_not_honor' };
    if (req.amountMinor > this.#maxAmountMinor) return { approved: false, reason: 'limit_exceeded' };
    const authCode = createHash('sha256').update(`auth:${req.requestId}`).digest('hex').slice(0, 12);
    this.approvals.push({ requestId: req.requestId, last4: card.pan.slice(-4), amountMinor: req.amountMinor, currency: req.currency, wallet: req.wallet, authCode });
    return { approved: true, authCode };
  }
}
