/**
 * A wallet's claim (challenge, counter) travels in the memo of the ledger command it allows, so
 * the claim and the money commit in one transaction. The registry keeps claims too, for lookups,
 * but commits them later and without an fsync: after a crash or power loss it may miss the last
 * few, and `restoreClaimsFromLedger` puts them back from the ledger before the hub serves a request.
 * Without that, a terminal that kept a wallet's authorization could be paid for it again under a
 * new request id (request-id idempotency does not cover another id).
 */
import type { Registry, RestoredClaim } from '../registry/registry.ts';
import type { LedgerStore } from '../ledger/store.ts';

export interface WalletClaim {
  readonly wallet: string;
  readonly challenge: string;
  readonly requestId: string;
  readonly counter?: number | undefined;
}

const PREFIX = 'claim ';
const CLAIM_MEMO_RE = /^claim ([0-9a-f]{64}) ([0-9a-f]{32,64}) ([0-9a-f]{32,64}) (-|[0-9]{1,16})$/;

/**
 * The registry's last claim may be this much older than a claim it lost (the clock stepping back
 * on a running hub); wider costs only a longer scan at start.
 */
export const CLAIM_RECOVERY_MARGIN_MS = 120_000;

/** At most 6 + 64 + 1 + 64 + 1 + 64 + 1 + 16 = 217 chars: inside the ledger's 256-char memo. */
export function claimMemo(c: WalletClaim): string {
  return `${PREFIX}${c.wallet} ${c.challenge} ${c.requestId} ${c.counter ?? '-'}`;
}

/** The claim a memo carries, or null for any other memo (operator notes, top-up sources). */
export function parseClaimMemo(memo: string): WalletClaim | null {
  const m = CLAIM_MEMO_RE.exec(memo);
  if (!m) return null;
  const counter = m[4] === '-' ? undefined : Number(m[4]);
  if (counter !== undefined && !Number.isSafeInteger(counter)) return null;
  return { wallet: m[1]!, challenge: m[2]!, requestId: m[3]!, ...(counter !== undefined ? { counter } : {}) };
}

/**
 * Re-enters into the registry the claims of ledger rows it may have lost: rows from
 * CLAIM_RECOVERY_MARGIN_MS before its last claim (its file keeps a prefix of its claims in the
 * order they were made, and a row is logged after its claim was made), and none older than
 * `oldestMs` (claims past the replay retention are pruned anyway). Returns how many it lacked.
 */
export async function restoreClaimsFromLedger(registry: Registry, store: LedgerStore, oldestMs: number): Promise<number> {
  const last = registry.lastClaimTimeMs();
  const sinceMs = last === null ? oldestMs : Math.max(oldestMs, last - CLAIM_RECOVERY_MARGIN_MS);
  const claims: RestoredClaim[] = [];
  for (const row of await store.memosSince(sinceMs, PREFIX)) {
    const c = parseClaimMemo(row.memo);
    if (c) claims.push({ ...c, timeMs: row.atMs });
  }
  return registry.restoreClaims(claims);
}
