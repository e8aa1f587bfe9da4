// Versioned schema of the registry file (keys, identities, replay state, rules). Append only.

export interface RegistryMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const REGISTRY_MIGRATIONS: readonly RegistryMigration[] = [
  {
    version: 1,
    name: 'registry-core',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta (key, value) VALUES ('blocklist_version', 0), ('keys_version', 1), ('products_version', 0);

      -- seed 001 certificate authority: enrolled terminals and their certificates.
      CREATE TABLE terminals (
        terminal_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        public_key TEXT NOT NULL,
        serial TEXT NOT NULL,
        certificate TEXT NOT NULL,
        enrolled_ms INTEGER NOT NULL,
        revoked_ms INTEGER
      );

      -- seed 002: licenses over pseudonyms. The ledger knows only the pseudonym (wallet key).
      CREATE TABLE wallets (
        wallet TEXT PRIMARY KEY,
        serial TEXT NOT NULL UNIQUE,
        license TEXT NOT NULL,
        registered_ms INTEGER NOT NULL,
        revoked_ms INTEGER
      );
      -- The issuer's (trustee's) table: real identities, read only through revealIdentity.
      CREATE TABLE identities (wallet TEXT PRIMARY KEY, identity TEXT NOT NULL);
      -- seed 001: every disclosure of an identity is logged.
      CREATE TABLE disclosure_log (
        id INTEGER PRIMARY KEY,
        wallet TEXT NOT NULL,
        operator TEXT NOT NULL,
        reason TEXT NOT NULL,
        time_ms INTEGER NOT NULL
      );

      CREATE TABLE blocklist (wallet TEXT PRIMARY KEY, reason TEXT NOT NULL, added_ms INTEGER NOT NULL);

      -- Replay protection: per-wallet counter windows and every challenge already used.
      CREATE TABLE counters (wallet TEXT PRIMARY KEY, state TEXT NOT NULL);
      CREATE TABLE challenges (
        challenge TEXT PRIMARY KEY,
        wallet TEXT NOT NULL,
        request_id TEXT NOT NULL,
        time_ms INTEGER NOT NULL
      );
      CREATE INDEX challenges_by_time ON challenges(time_ms);

      CREATE TABLE catalogs (
        merchant_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        articles TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (merchant_id, version)
      );
      CREATE TABLE fares (version INTEGER PRIMARY KEY, fare_table TEXT NOT NULL, time_ms INTEGER NOT NULL);
      CREATE TABLE products (name TEXT PRIMARY KEY, product TEXT NOT NULL);

      -- The signed answer to every request read far enough: a retry gets the same bytes back.
      CREATE TABLE results (
        request_id TEXT PRIMARY KEY,
        terminal_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        op TEXT NOT NULL,
        wallet TEXT,
        engine_id TEXT,
        status TEXT NOT NULL,
        code TEXT,
        amount_minor INTEGER NOT NULL,
        currency TEXT NOT NULL,
        hold_until_ms INTEGER,
        result BLOB NOT NULL,
        time_ms INTEGER NOT NULL
      );
      CREATE INDEX results_by_time ON results(time_ms);

      CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, wallet TEXT NOT NULL, product TEXT NOT NULL, request_id TEXT NOT NULL, issued_ms INTEGER NOT NULL);
      -- First reported use wins (pretixSCAN-style reconciliation of offline scans).
      CREATE TABLE ticket_uses (
        ticket_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL,
        terminal_id TEXT NOT NULL,
        station TEXT NOT NULL,
        used_ms INTEGER NOT NULL
      );
      CREATE TABLE entry_records (record_id TEXT PRIMARY KEY, request_id TEXT NOT NULL);

      CREATE TABLE receipts (
        request_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        terminal_id TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, outcome)
      );

      CREATE TABLE payouts (
        payout_id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        currency TEXT NOT NULL,
        state TEXT NOT NULL,
        reference TEXT,
        time_ms INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'hub-key-ring',
    sql: `
      -- Hub signing keys and their validity windows (hub/registry/hub-keyring.ts); secrets stay in files.
      CREATE TABLE hub_keys (
        public_key TEXT PRIMARY KEY,
        file TEXT NOT NULL,
        not_before_ms INTEGER NOT NULL,
        not_after_ms INTEGER NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'overspend-blocks',
    sql: `
      -- Overspent ledger rows (by seq) whose wallet this file has blocklisted, from the
      -- overspend_ledger_seq meta value on: the hub's start blocklists the wallets of the others
      -- (the write lost to a crash after the ledger's commit) and never re-blocks one an operator
      -- lifted (Registry.restoreOverspendBlocks).
      CREATE TABLE overspend_blocks (
        seq INTEGER PRIMARY KEY
      );
      -- A registry in use before this migration handled its overspent rows with no record of
      -- which (an operator may have lifted some since): -1 tells the next start to count every
      -- row logged until then as handled.
      INSERT INTO meta (key, value) SELECT 'overspend_ledger_seq', -1 WHERE EXISTS (SELECT 1 FROM wallets);
    `,
  },
  {
    version: 4,
    name: 'incidents',
    sql: `
      -- What terminals could not settle and reported (a gate opened, the wallet never signed),
      -- for the operator; by the report's request id, so a resent report is one row.
      CREATE TABLE incidents (
        request_id TEXT PRIMARY KEY,
        terminal_id TEXT NOT NULL,
        wallet TEXT NOT NULL,
        kind TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        currency TEXT NOT NULL,
        detail TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        recorded_ms INTEGER NOT NULL
      );
      CREATE INDEX incidents_recorded ON incidents (recorded_ms);
      CREATE INDEX incidents_wallet ON incidents (wallet, recorded_ms);
    `,
  },
  {
    version: 5,
    name: 'entry-record-contested',
    sql: `
      -- The first locally decided fare (a gate opened on it) that presented an entry record
      -- already claimed by another fare: that fare's paid exit, if it expires unused, is not
      -- refunded — the customer left on its record elsewhere (SettlementService #receipt).
      ALTER TABLE entry_records ADD COLUMN contested_by TEXT;
      CREATE INDEX entry_records_request ON entry_records (request_id);
    `,
  },
  {
    version: 6,
    name: 'superseded-licenses',
    sql: `
      -- A wallet's licenses replaced by a reissue: still honoured until they expire (terminals
      -- deciding offline accept them, and the wallet may not hold its new one yet).
      CREATE TABLE superseded_licenses (
        serial TEXT PRIMARY KEY,
        wallet TEXT NOT NULL,
        superseded_ms INTEGER NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'superseded-licenses-expiry',
    sql: `
      -- Until when a replaced license is honoured (its notAfter): a blocklisted wallet stays
      -- announced while any of its licenses is unexpired. Rows from version 6 alone (none outside
      -- development) count as expired.
      ALTER TABLE superseded_licenses ADD COLUMN not_after_ms INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX superseded_licenses_wallet ON superseded_licenses (wallet, not_after_ms);
    `,
  },
  {
    version: 8,
    name: 'terminal-broker-password-scheme',
    sql: `
      -- How each terminal's external-Mosquitto password is derived (hub/mqtt/mosquitto-config.ts
      -- brokerPasswordFor): 1 = its id alone, as every hub before this version did, 2 = its id,
      -- key and current certificate serial. Terminals enrolled before get 1 (the default), so their
      -- passwords stay as handed out; insertTerminal writes 2 and replaceCertificate (a reissue)
      -- sets 2: each moves alone, never the whole fleet at once.
      ALTER TABLE terminals ADD COLUMN broker_password_scheme INTEGER NOT NULL DEFAULT 1 CHECK (broker_password_scheme IN (1, 2));
    `,
  },
];
