// Bounded in-memory record store of a wallet (admission records, tickets, balance statements).
import { MAX_RECORD_BYTES, type RecordKindCode, type StoredRecord } from '../../hardware/wallet-apdu/apdu.ts';

export type RecordStoreLimits = { maxRecords: number; maxRecordBytes: number; maxTotalBytes: number };

export const DEFAULT_RECORD_LIMITS: RecordStoreLimits = { maxRecords: 32, maxRecordBytes: MAX_RECORD_BYTES, maxTotalBytes: 32 * 1024 };

export class RecordStore {
  private records: StoredRecord[] = [];
  private nextId = 1;

  constructor(readonly limits: RecordStoreLimits = DEFAULT_RECORD_LIMITS) {}

  /** Returns the new id, or 'full' / 'too-large' (business outcomes, not throws). */
  store(kind: RecordKindCode, bytes: Uint8Array, replace: boolean): number | 'full' | 'too-large' {
    if (bytes.length > this.limits.maxRecordBytes) return 'too-large';
    const kept = replace ? this.records.filter((r) => r.kind !== kind) : this.records;
    const used = kept.reduce((n, r) => n + r.bytes.length, 0);
    if (kept.length + 1 > this.limits.maxRecords || used + bytes.length > this.limits.maxTotalBytes) return 'full';
    const id = this.allocateId(kept);
    this.records = [...kept, { kind, id, bytes: bytes.slice() }];
    return id;
  }

  list(kind?: RecordKindCode): StoredRecord[] {
    return this.records.filter((r) => kind === undefined || r.kind === kind);
  }

  delete(id: number): boolean {
    const before = this.records.length;
    this.records = this.records.filter((r) => r.id !== id);
    return this.records.length < before;
  }

  private allocateId(kept: readonly StoredRecord[]): number {
    // Ids are 16-bit and never 0; skip ids still in use after wrap-around.
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffff ? 1 : this.nextId + 1;
      if (!kept.some((r) => r.id === id)) return id;
    }
  }
}
