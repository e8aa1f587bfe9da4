// Validation and content hash of commands. A malformed command is a programmer error (the rules
// layer validates wire input first), so it throws; business problems are decided later.
import { hash } from 'node:crypto';
import type { Command } from './types.ts';

const REQUEST_ID_RE = /^[0-9a-f]{32}$/;
const CURRENCY_RE = /^[A-Z]{3}$/;
const WALLET_ID_RE = /^[0-9a-f]{64}$/;
const MERCHANT_ID_RE = /^[a-z0-9][a-z0-9._:-]{0,63}$/;
const MAX_MEMO_CHARS = 320;
/** Longest hold given as a length (a year and a day): a bound, and logged time + it stays a safe integer. */
export const MAX_HOLD_MS = 366 * 24 * 3600_000;

export function isRequestId(v: unknown): v is string {
  return typeof v === 'string' && REQUEST_ID_RE.test(v);
}
export function isWalletId(v: unknown): v is string {
  return typeof v === 'string' && WALLET_ID_RE.test(v);
}
export function isMerchantId(v: unknown): v is string {
  return typeof v === 'string' && MERCHANT_ID_RE.test(v);
}
export function isCurrencyCode(v: unknown): v is string {
  return typeof v === 'string' && CURRENCY_RE.test(v);
}

function assert(ok: boolean, what: string, value: unknown): void {
  if (!ok) throw new TypeError(`invalid ${what}: ${JSON.stringify(value)}`);
}

function assertAmount(name: string, v: unknown, allowZero = false): void {
  assert(typeof v === 'number' && Number.isSafeInteger(v) && (allowZero ? v >= 0 : v > 0), name, v);
}

/** Throws TypeError naming the first bad field. */
export function assertCommand(cmd: Command): void {
  assert(typeof cmd === 'object' && cmd !== null, 'command', cmd);
  assert(isRequestId(cmd.requestId), 'requestId (32 lowercase hex)', cmd.requestId);
  assert(cmd.memo === undefined || (typeof cmd.memo === 'string' && cmd.memo.length <= MAX_MEMO_CHARS), 'memo', cmd.memo);
  switch (cmd.kind) {
    case 'purchase':
    case 'fare':
    case 'offline_purchase':
      assert(isWalletId(cmd.walletId), 'walletId', cmd.walletId);
      assert(isMerchantId(cmd.merchantId), 'merchantId', cmd.merchantId);
      assertAmount('amountMinor', cmd.amountMinor);
      assert(isCurrencyCode(cmd.currency), 'currency', cmd.currency);
      if (cmd.feeMinor !== undefined) {
        assertAmount('feeMinor', cmd.feeMinor, true);
        assert(cmd.feeMinor <= cmd.amountMinor, 'feeMinor (≤ amountMinor)', cmd.feeMinor);
      }
      if (cmd.kind !== 'fare') {
        if (cmd.holdUntilMs !== undefined) assertAmount('holdUntilMs', cmd.holdUntilMs);
        if (cmd.holdMs !== undefined) {
          assertAmount('holdMs', cmd.holdMs);
          assert(cmd.holdMs <= MAX_HOLD_MS, `holdMs (≤ ${MAX_HOLD_MS})`, cmd.holdMs);
          assert(cmd.holdUntilMs === undefined, 'holdMs (not with holdUntilMs)', cmd.holdMs);
        }
      }
      return;
    case 'refund':
      assert(isRequestId(cmd.originalRequestId), 'originalRequestId', cmd.originalRequestId);
      assert(cmd.originalRequestId !== cmd.requestId, 'originalRequestId (≠ requestId)', cmd.originalRequestId);
      return;
    case 'topup':
      assert(isWalletId(cmd.walletId), 'walletId', cmd.walletId);
      assertAmount('amountMinor', cmd.amountMinor);
      assert(isCurrencyCode(cmd.currency), 'currency', cmd.currency);
      assert(cmd.source === 'cash' || cmd.source === 'card', 'source', cmd.source);
      return;
    case 'transfer':
      assert(isWalletId(cmd.fromWalletId), 'fromWalletId', cmd.fromWalletId);
      assert(isWalletId(cmd.toWalletId), 'toWalletId', cmd.toWalletId);
      assertAmount('amountMinor', cmd.amountMinor);
      assert(isCurrencyCode(cmd.currency), 'currency', cmd.currency);
      return;
    case 'payout':
      assert(isMerchantId(cmd.merchantId), 'merchantId', cmd.merchantId);
      assertAmount('amountMinor', cmd.amountMinor);
      assert(isCurrencyCode(cmd.currency), 'currency', cmd.currency);
      return;
    default:
      assert(false, 'kind', (cmd as { kind: unknown }).kind);
  }
}

/**
 * Canonical content of a command: a JSON array with a fixed field order per kind (absent optional
 * fields are null), so two deliveries with equal content hash equally regardless of key order.
 */
export function canonicalCommand(cmd: Command): string {
  const memo = cmd.memo ?? null;
  switch (cmd.kind) {
    case 'purchase':
      // A hold given as a length is appended, tagged, only when there is one: every other purchase
      // hashes as it always has (a retry of one an older hub logged still matches).
      if (cmd.holdMs !== undefined) {
        return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.merchantId, cmd.amountMinor, cmd.currency, cmd.feeMinor ?? 0, null, memo, 'holdMs', cmd.holdMs]);
      }
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.merchantId, cmd.amountMinor, cmd.currency, cmd.feeMinor ?? 0, cmd.holdUntilMs ?? null, memo]);
    case 'fare':
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.merchantId, cmd.amountMinor, cmd.currency, cmd.feeMinor ?? 0, memo]);
    case 'offline_purchase':
      // A hold is appended only when there is one (a length tagged): an unheld command hashes as it always has.
      if (cmd.holdMs !== undefined) {
        return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.merchantId, cmd.amountMinor, cmd.currency, cmd.feeMinor ?? 0, memo, 'holdMs', cmd.holdMs]);
      }
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.merchantId, cmd.amountMinor, cmd.currency, cmd.feeMinor ?? 0, memo, ...(cmd.holdUntilMs !== undefined ? [cmd.holdUntilMs] : [])]);
    case 'refund':
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.originalRequestId, memo]);
    case 'topup':
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.walletId, cmd.amountMinor, cmd.currency, cmd.source, memo]);
    case 'transfer':
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.fromWalletId, cmd.toWalletId, cmd.amountMinor, cmd.currency, memo]);
    case 'payout':
      return JSON.stringify([1, cmd.kind, cmd.requestId, cmd.merchantId, cmd.amountMinor, cmd.currency, memo]);
  }
}

/** sha256 hex of the canonical content: the log's content hash (same id + other hash = mismatch). */
export function commandHash(cmd: Command): string {
  return hash('sha256', canonicalCommand(cmd), 'hex');
}
