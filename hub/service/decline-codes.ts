// The ledger's decline codes mapped onto the wire's ERROR_CODES (protocol/errors.ts).
import type { ErrorCode } from '../../protocol/index.ts';
import type { DeclineCode } from '../ledger/types.ts';

const MAP: Record<DeclineCode, ErrorCode> = {
  insufficient_funds: 'INSUFFICIENT_FUNDS',
  unknown_account: 'UNKNOWN_WALLET',
  currency_mismatch: 'CURRENCY_MISMATCH',
  duplicate_mismatch: 'DUPLICATE_MISMATCH',
  cancel_window_closed: 'CANCEL_WINDOW_CLOSED',
  already_refunded: 'ALREADY_REFUNDED',
  not_found: 'NOT_FOUND',
  not_refundable: 'NOT_CANCELLABLE',
  same_account: 'MALFORMED',
  balance_limit: 'AMOUNT_INVALID',
};

export function mapDecline(code: DeclineCode): ErrorCode {
  return MAP[code];
}
