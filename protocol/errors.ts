/**
 * One registry of stable error codes shared by every part and carried over the wire.
 * A code never changes meaning once released; add new ones, never reuse old ones.
 */
export const ERROR_CODES = {
  // wire / decoding
  TOO_LARGE: 'The message is larger than the limit for its kind.',
  MALFORMED: 'The message is not valid JSON or does not match its schema.',
  UNSUPPORTED_VERSION: 'The message names a protocol version this peer does not speak.',
  WRONG_TYPE: 'The message is of a different type than expected here.',
  BAD_SIGNATURE: 'A signature does not verify against the signer\'s key.',
  // identities
  UNKNOWN_TERMINAL: 'The terminal is not enrolled at this hub.',
  UNKNOWN_ISSUER: 'The certificate or license was issued by a key this peer does not trust.',
  UNKNOWN_WALLET: 'The wallet has no account at this hub.',
  CERT_EXPIRED: 'The certificate or license has expired.',
  CERT_NOT_YET_VALID: 'The certificate or license is not valid yet.',
  REVOKED: 'The key, certificate or license has been revoked.',
  TERMINAL_MISMATCH: 'The message names a different terminal than the one that sent it.',
  // replay protection
  REPLAY: 'This challenge, counter or request was already used.',
  STALE_TIMESTAMP: 'The message time is outside the allowed clock skew.',
  DUPLICATE_MISMATCH: 'A request with this id was already received with different content.',
  // business outcomes
  INSUFFICIENT_FUNDS: 'The wallet balance does not cover the amount.',
  CURRENCY_MISMATCH: 'The amounts are in different currencies.',
  AMOUNT_INVALID: 'The amount is not a positive integer number of minor units within bounds.',
  AMOUNT_MISMATCH: 'The amount does not match the authorized or catalog amount.',
  RESTRICTED: 'The customer may not buy this article.',
  BLOCKLISTED: 'The wallet is on the blocklist.',
  UNKNOWN_ARTICLE: 'The article is not in the merchant\'s catalog.',
  CANCEL_WINDOW_CLOSED: 'The cancellation window for this purchase has ended.',
  NOT_CANCELLABLE: 'The purchase has no cancellation window.',
  ALREADY_REFUNDED: 'The settlement was already refunded or cancelled.',
  NOT_FOUND: 'No settlement with this request id exists.',
  TICKET_USED: 'The ticket was already used.',
  TICKET_INVALID: 'The ticket is not valid here or now.',
  NOT_CONSUMED: 'The admission record was not consumed by any exit the hub knows.',
  OFFLINE_LIMIT: 'The offline spending limit is exhausted.',
  NOT_PERMITTED: 'This terminal or operator may not perform this operation.',
  CARD_DECLINED: 'The card authorizer declined the payment.',
  // operational
  TIMEOUT: 'The peer did not answer in time.',
  UNAVAILABLE: 'The service is unavailable; retry later with the same request id.',
  INTERNAL: 'An internal error occurred; the request was not settled.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Operational error with a stable code; keeps the original `cause`. */
export class TapsettleError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${ERROR_CODES[code]} (${detail})` : ERROR_CODES[code], options);
    this.name = 'TapsettleError';
    this.code = code;
  }
}
