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
import { forEachLedgerPage } from './ledger-pages.ts';

/** A claim as its memo carries it: the registry's RestoredClaim without the time (the row has that). */
export type WalletClaim = Omit<RestoredClaim, 'timeMs'>;

const PREFIX = 'claim ';
const CLAIM_MEMO_RE = /^claim ([0-9a-f]{64}) ([0-9a-f]{32,64}) ([0-9a-f]{32,64}) (-|[0-9]{1,16})(?: ([0-9a-f]{32,64}))?$/;

/** Ledger rows read per step of a restore (one registry transaction each). */
const RESTORE_PAGE = 10_000;

/** At most 6 + 64 + 1 + 64 + 1 + 64 + 1 + 16 + 1 + 64 = 282 chars: inside the ledger's 320-char memo. */
export function claimMemo(c: WalletClaim): string {
  const memo = `${PREFIX}${c.wallet} ${c.challenge} ${c.requestId} ${c.counter ?? '-'}`;
  return c.entryRecord === undefined ? memo : `${memo} ${c.entryRecord}`;
}

/** The claim a memo carries, or null for any other memo (operator notes, top-up sources). */
export function parseClaimMemo(memo: string): WalletClaim | null {
  const m = CLAIM_MEMO_RE.exec(memo);
  if (!m) return null;
  const counter = m[4] === '-' ? undefined : Number(m[4]);
  if (counter !== undefined && !Number.isSafeInteger(counter)) return null;
  return { wallet: m[1]!, challenge: m[2]!, requestId: m[3]!, ...(counter !== undefined ? { counter } : {}), ...(m[5] !== undefined ? { entryRecord: m[5] } : {}) };
}

/**
 * Re-enters into the registry the claims of the ledger rows logged from its claimsLedgerSeq()
 * on: every claim it can have lost is among them (no clock involved), and the ones it has change
 * nothing. Then sets claimsLedgerSeq() to the ledger's next seq, lower than before too: a claim
 * may have recorded seqs of rows the ledger then lost (handed to its writer, not yet committed),
 * which it gives out again. Run before the hub serves a request. Returns how many challenges it
 * lacked.
 */
export async function restoreClaimsFromLedger(registry: Registry, store: LedgerStore, pageSize = RESTORE_PAGE): Promise<number> {
  let missing = 0;
  await forEachLedgerPage(
    store,
    registry.claimsLedgerSeq(),
    pageSize,
    (from, limit) => store.memosFrom(from, PREFIX, limit),
    (rows, throughSeq) => {
      const claims: RestoredClaim[] = [];
      for (const row of rows) {
        const c = parseClaimMemo(row.memo);
        // A fare that paid nothing (declined, refunded) gave its entry record back (settlement-service, hub.refund).
        const givenBack = c?.entryRecord !== undefined && (row.state === 'declined' || row.refundedBySeq !== null);
        if (c) claims.push({ ...c, timeMs: row.atMs, ...(givenBack ? { entryRecordGivenBack: true } : {}) });
      }
      missing += registry.restoreClaims(claims, throughSeq);
    },
  );
  return missing;
}
