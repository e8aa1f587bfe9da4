/**
 * The ledger keys its log by 128-bit request ids (32 hex chars); the wire allows 16..32 bytes.
 * Longer ids are hashed down; commands the hub makes on a request's behalf (a refund after a
 * failed dispense, a ticket id) get ids derived from it, so a retry derives the same id again.
 */
import { createHash } from 'node:crypto';

export function engineRequestId(requestId: string): string {
  return requestId.length === 32 ? requestId : createHash('sha256').update(`wire:${requestId}`).digest('hex').slice(0, 32);
}

export function derivedId(tag: string, requestId: string): string {
  return createHash('sha256').update(`${tag}:${requestId}`).digest('hex').slice(0, 32);
}
