/**
 * Offline spending (seed 002): a terminal that cannot reach the hub (or a gate deciding locally,
 * PRODUCT.md §3) may accept a wallet within a risk policy; the hub settles the upload afterwards
 * even when it overdraws, then flags the pseudonym and blocklists it. Pure.
 */
export interface OfflineLimits {
  /** Per-wallet cap from the license (seed 002's balance counter). */
  readonly offlineLimitMinor: number;
  /** Largest single offline payment a terminal accepts. */
  readonly maxSingleMinor: number;
}

export interface OfflineInput {
  readonly amountMinor: number;
  /** Balance on the wallet's last hub-signed statement (undefined when it carries none). */
  readonly statementBalanceMinor: number | undefined;
  /** Offline spending since that statement that the hub has not confirmed yet. */
  readonly unsettledOfflineMinor: number;
  readonly blocklisted: boolean;
}

export type OfflineDecision = { ok: true } | { ok: false; code: 'BLOCKLISTED' | 'OFFLINE_LIMIT' | 'INSUFFICIENT_FUNDS' };

export function decideOffline(limits: OfflineLimits, input: OfflineInput): OfflineDecision {
  if (input.blocklisted) return { ok: false, code: 'BLOCKLISTED' };
  if (input.amountMinor > limits.maxSingleMinor) return { ok: false, code: 'OFFLINE_LIMIT' };
  if (input.unsettledOfflineMinor + input.amountMinor > limits.offlineLimitMinor) return { ok: false, code: 'OFFLINE_LIMIT' };
  // Without a statement the offline limit alone bounds the risk; with one, stay within it too.
  if (input.statementBalanceMinor !== undefined && input.statementBalanceMinor - input.unsettledOfflineMinor < input.amountMinor) {
    return { ok: false, code: 'INSUFFICIENT_FUNDS' };
  }
  return { ok: true };
}

/** Hub side: an uploaded offline decision that overdrew blocklists the wallet (seed 002). */
export function blocklistAfterSettlement(outcome: { status: string; overspent?: true }): boolean {
  return outcome.status === 'approved' && outcome.overspent === true;
}
