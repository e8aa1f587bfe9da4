/**
 * A wallet that overdraws on an offline authorization is blocklisted (seed 002) right after the
 * ledger commits the overdraft, in the registry: a crash or power cut between the two commits
 * would leave the ledger's overdraft without its blocklisting, and the wallet free to spend offline
 * again. The ledger marks such rows (`overspent`); before the hub serves a request,
 * `restoreOverspendBlocklist` blocklists the wallets of the ones the registry has not handled.
 */
import type { LedgerStore } from '../ledger/store.ts';
import type { Registry } from '../registry/registry.ts';
import { forEachLedgerPage } from './ledger-pages.ts';

/** Overspent ledger rows read per step (one registry transaction each). */
const RESTORE_PAGE = 1_000;

/** Returns the wallets it blocklisted. Run after the engine has finished the rows a crash left open. */
export async function restoreOverspendBlocklist(registry: Registry, store: LedgerStore, nowMs: number, pageSize = RESTORE_PAGE): Promise<string[]> {
  const from = registry.overspendLedgerSeq();
  const added: string[] = [];
  await forEachLedgerPage(
    store,
    // Upgraded from a registry that kept no record of the rows it handled: they all count as handled.
    Math.max(0, from),
    pageSize,
    (seq, limit) => (from < 0 ? Promise.resolve([]) : store.overspentFrom(seq, limit)),
    (rows, throughSeq, last) => added.push(...registry.restoreOverspendBlocks(rows, throughSeq, last, nowMs)),
  );
  return added;
}
