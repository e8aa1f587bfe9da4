/**
 * Pages through ledger rows from a seq to the ledger's end, for the start-up restores that put back
 * into the registry what a crash took from it (claim-memo.ts, overspend-blocklist.ts).
 */
import type { LedgerStore } from '../ledger/store.ts';

/**
 * Hands each page of `read(from, limit)` to `apply` with the seq it covers the ledger through
 * (exclusive: the next page's start; after the last page, the ledger's next seq) and whether it is
 * the last.
 */
export async function forEachLedgerPage<R extends { readonly seq: number }>(
  store: LedgerStore,
  fromSeq: number,
  pageSize: number,
  read: (fromSeq: number, limit: number) => Promise<R[]>,
  apply: (rows: R[], throughSeq: number, last: boolean) => void,
): Promise<void> {
  const { lastSeq } = await store.counters();
  let from = fromSeq;
  for (;;) {
    const rows = await read(from, pageSize);
    const last = rows.length < pageSize;
    from = last ? lastSeq + 1 : rows[rows.length - 1]!.seq + 1;
    apply(rows, from, last);
    if (last) return;
  }
}
