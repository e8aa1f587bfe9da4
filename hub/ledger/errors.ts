// Operational errors of the ledger (not business outcomes: those are returned, never thrown).

export const LEDGER_ERROR_CODES = {
  engine_closed: 'The engine was closed (or stopped by a test hook) before the command was committed.',
  queue_full: 'More commands are waiting than the engine accepts (maxQueue); retry later with the same request id.',
  schema_too_new: 'The database was migrated by a newer version of the hub than this one.',
  account_conflict: 'An account with that id already exists with another kind, currency or parent.',
  store_failed: 'The store failed to commit a batch; nothing of it was applied (though a failed fsync may leave it in the WAL for recovery to keep).',
  not_committed: 'A batch decided on top of one that failed to commit was refused before it was written; nothing of it is anywhere.',
  duplicate_request: 'A batch tried to log request ids that are already logged; nothing of it was applied (the engine retries with them).',
} as const;

export type LedgerErrorCode = keyof typeof LEDGER_ERROR_CODES;

export class LedgerError extends Error {
  readonly code: LedgerErrorCode;

  constructor(code: LedgerErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'LedgerError';
    this.code = code;
  }
}

/** Thrown by LedgerStore.commitBatch when log inserts collide with logged request ids. */
export class DuplicateRequestError extends LedgerError {
  readonly requestIds: readonly string[];

  constructor(requestIds: readonly string[]) {
    super('duplicate_request', `${requestIds.length} request id(s) already logged`);
    this.requestIds = requestIds;
  }
}
