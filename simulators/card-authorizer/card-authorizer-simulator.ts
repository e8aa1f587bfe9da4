/**
 * In-process stand-in for a card-payment authorizer: opens the sealed card with its X25519 key
 * (protocol openCard), declines the test PANs it was told to and cards failing the Luhn check,
 * approves the rest. Idempotent by request id, like a real acquirer's idempotency key.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { createHash } from 'node:crypto';
import { generateSealingKeyPair, openCard } from '../../protocol/index.ts';
import type { CardAuthorization, CardAuthorizationRequest, CardAuthorizer } from '../../hub/service/card-authorizer.ts';

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

export class CardAuthorizerSimulator implements CardAuthorizer {
  readonly sealingPublicKey: Uint8Array;
  readonly #secretKey: Uint8Array;
  readonly #decline: Set<string>;
  readonly #maxAmountMinor: number;
  readonly #answers = new Map<string, CardAuthorization>();
  /** Approved authorizations, for tests and the dashboard (last 4 digits only). */
  readonly approvals: Array<{ requestId: string; last4: string; amountMinor: number; currency: string }> = [];

  constructor(options: CardAuthorizerSimulatorOptions = {}) {
    this.#secretKey = options.secretKey ?? generateSealingKeyPair().secretKey;
    this.sealingPublicKey = x25519.getPublicKey(this.#secretKey);
    this.#decline = new Set(options.declinePans ?? [TEST_PAN_DECLINED]);
    this.#maxAmountMinor = options.maxAmountMinor ?? 1_000_000;
  }

  async authorize(req: CardAuthorizationRequest): Promise<CardAuthorization> {
    const known = this.#answers.get(req.requestId);
    if (known) return known;
    const answer = this.#decide(req);
    this.#answers.set(req.requestId, answer);
    return answer;
  }

  #decide(req: CardAuthorizationRequest): CardAuthorization {
    const card = openCard(req.sealedCard, { secretKey: this.#secretKey, publicKey: this.sealingPublicKey }, req.requestId);
    if (!card) return { approved: false, reason: 'unreadable' };
    if (!luhnValid(card.pan)) return { approved: false, reason: 'invalid_number' };
    if (this.#decline.has(card.pan)) return { approved: false, reason: 'do_not_honor' };
    if (req.amountMinor > this.#maxAmountMinor) return { approved: false, reason: 'limit_exceeded' };
    this.approvals.push({ requestId: req.requestId, last4: card.pan.slice(-4), amountMinor: req.amountMinor, currency: req.currency });
    const authCode = createHash('sha256').update(`auth:${req.requestId}`).digest('hex').slice(0, 12);
    return { approved: true, authCode };
  }
}
