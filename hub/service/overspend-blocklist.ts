/**
 * A wallet that overdraws on an offline authorization is blocklisted (seed 002) right after the
 * ledger commits the overdraft, in the registry: a crash or power cut between the two commits
 * would leave the ledger's overdraft without its blocklisting, and the wallet free to spend offline
 * again. The ledger marks such rows (`overspent`); before the hub serves a request,
 * `restoreOverspendBlocklist` blocklists the wallets of the ones the registry has not handled.
 */
import type { LedgerStore } from '../ledger/store.ts';
import type { Registry } from '../registry/registry.ts';

/** Overspent ledger rows read per step (one registry transaction each). */
const RESTORE_PAGE = 1_000;

/** Returns the wallets it blocklisted. */
export async function restoreOverspendBlocklist(registry: Registry, store: LedgerStore, nowMs: number, pageSize = RESTORE_PAGE): Promise<string[]> {
  const { lastSeq } = await store.counters();
  let from = registry.overspendLedgerSeq();
  // Upgraded from a registry that kept no record of the rows it handled: they all count as handled.
  if (from < 0) return registry.restoreOverspendBlocks([], lastSeq + 1, nowMs);
  const added: string[] = [];
  for (;;) {
    const rows = await store.overspentFrom(from, pageSize);
    from = rows.length < pageSize ? lastSeq + 1 : rows[rows.length - 1]!.seq + 1;
    added.push(...registry.restoreOverspendBlocks(rows, from, nowMs));
    if (rows.length < pageSize) return added;
  }
}
