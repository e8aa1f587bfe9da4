// Versioned schema of the SQLite ledger. Append only: never edit a shipped migration, add one.

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'ledger-core',
    sql: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT INTO meta (key, value) VALUES ('settled_through_seq', 0);

      -- seed 004 claim 19: per-user records, read by key; balance kept beside the journal.
      -- Rows are compact (the 64-char key lives in account_ids) so a batch's random balance
      -- updates share pages and write less WAL.
      CREATE TABLE accounts (
        num INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        currency TEXT NOT NULL,
        balance_minor INTEGER NOT NULL DEFAULT 0,
        parent_num INTEGER REFERENCES accounts(num),
        share_bps INTEGER NOT NULL DEFAULT 0,
        flags INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL
      );
      CREATE INDEX accounts_flagged ON accounts(num) WHERE flags != 0;
      CREATE TABLE account_ids (
        id TEXT PRIMARY KEY,
        num INTEGER NOT NULL UNIQUE REFERENCES accounts(num)
      ) WITHOUT ROWID;

      -- seed 004 claims 29–33: the settlement log file database, keyed by request id.
      CREATE TABLE settlement_log (
        seq INTEGER PRIMARY KEY,
        request_id BLOB NOT NULL UNIQUE,
        hash BLOB NOT NULL,
        kind INTEGER NOT NULL,
        payer_num INTEGER,
        payee_num INTEGER,
        amount_minor INTEGER NOT NULL,
        fee_minor INTEGER NOT NULL,
        currency TEXT NOT NULL,
        hold_until_ms INTEGER,
        ref_seq INTEGER,
        memo TEXT,
        state INTEGER NOT NULL,
        code TEXT,
        entry_id INTEGER,
        balance_after_minor INTEGER,
        at_ms INTEGER NOT NULL,
        overspent INTEGER NOT NULL,
        refunded_by_seq INTEGER
      );

      CREATE TABLE journal_entries (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        currency TEXT NOT NULL,
        at_ms INTEGER NOT NULL
      );

      -- The per-account index IS the table: a wallet's history is a range scan of its own rows.
      CREATE TABLE postings (
        account_num INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        amount_minor INTEGER NOT NULL,
        PRIMARY KEY (account_num, entry_id)
      ) WITHOUT ROWID;

      -- seed 004 claim 13: money waiting for the end of a cancellation window.
      CREATE TABLE holds (
        seq INTEGER PRIMARY KEY,
        release_at_ms INTEGER NOT NULL
      );
      CREATE INDEX holds_by_release ON holds(release_at_ms, seq);
    `,
  },
  {
    version: 2,
    name: 'overspent-rows',
    sql: `
      -- The rare rows that overdrew their wallet, for the hub's start: it blocklists their wallets
      -- when the registry lost that write (hub/service/overspend-blocklist.ts).
      CREATE INDEX settlement_log_overspent ON settlement_log(seq) WHERE overspent = 1;
    `,
  },
  {
    version: 3,
    name: 'card-topups',
    sql: `
      -- Card top-ups by time, for reconciling them with the card acquirer's settlement report
      -- (hub/clearing/card-reconciliation.ts). kind 4 = topup (codes.ts); a top-up's memo starts
      -- with its source.
      CREATE INDEX settlement_log_card_topups ON settlement_log(at_ms) WHERE kind = 4 AND substr(memo, 1, 4) = 'card';
    `,
  },
];
