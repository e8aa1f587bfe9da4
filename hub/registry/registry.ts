/**
 * The hub's key registry and rule store: one SQLite file of its own (separate from the ledger),
 * versioned migrations. Holds enrolled terminals, wallet licenses, the issuer's identity table and
 * disclosure log (seed 001/002), the blocklist, replay state (per-wallet counter windows, used
 * challenges), catalogs, fare tables, ticket products, ticket uses, and the signed results.
 *
 * Durability: WAL, synchronous=FULL for everything written now and then (identities, keys,
 * revocations, the blocklist, rule versions, payouts): an fsync each, on disk when the call
 * returns. Per-request state commits at NORMAL (#relaxed): it survives a process crash, and what a
 * power loss takes is covered by the ledger — claims and entry records come back from it (README,
 * "Claims commit with their money"), results are rebuilt from it, a receipt's refund is idempotent
 * there. Claims no ledger row carries (a ticket use, a zero-fare exit, a history query) are made
 * durable before their answer leaves (durable()).
 */
import Database from 'better-sqlite3';
import { Checkpointer } from '../ledger/checkpointer.ts';
import { TableKeyFilter } from '../ledger/table-key-filter.ts';
import { WalSyncer } from '../ledger/wal-syncer.ts';
import { CounterWindow, type ArticleT, type Envelope, type FareTable } from '../../protocol/index.ts';
import type { TicketProductT } from '../rules/tickets.ts';
import type { CatalogVersion } from '../rules/catalog.ts';
import type { FareTableVersion } from '../rules/fare-tables.ts';
import { REGISTRY_MIGRATIONS, type RegistryMigration } from './migrations.ts';
import type { HubKeyEntry } from './hub-keyring.ts';

export type TerminalKindT = 'vending' | 'gate' | 'pos';

export interface TerminalInfo {
  readonly publicKey: string;
  readonly kind: TerminalKindT;
  readonly merchantId: string;
  readonly revoked: boolean;
}

/** What the MQTT layer needs to authenticate a terminal at CONNECT and route its messages. */
export interface TerminalDirectory {
  lookupTerminal(terminalId: string): TerminalInfo | undefined;
}

export interface TerminalRecord extends TerminalInfo {
  readonly terminalId: string;
  readonly serial: string;
  /**
   * How its external-Mosquitto password is derived (hub/mqtt/mosquitto-config.ts
   * brokerPasswordFor): 1 = from its id alone (enrolled before registry version 8, until its
   * certificate is reissued), 2 = from its id, key and certificate serial.
   */
  readonly brokerPasswordScheme: 1 | 2;
  readonly certificate: Envelope<'terminal.certificate'>;
  readonly enrolledMs: number;
  readonly revokedMs: number | null;
}

/** How ticket_uses records a use claimed by a refund (a voided ticket). */
const VOID_TERMINAL = 'hub';
const VOID_STATION = 'refund';

/**
 * Blocklist rows whose wallet holds a license not expired at `?` — the one in force, or one a
 * reissue replaced, which terminals still honour — or whose wallet is unknown here.
 */
const UNEXPIRED_BLOCKLIST = `FROM blocklist b LEFT JOIN wallets w ON w.wallet = b.wallet
  WHERE w.license IS NULL OR max(json_extract(w.license, '$.body.notAfter'),
    coalesce((SELECT max(s.not_after_ms) FROM superseded_licenses s WHERE s.wallet = b.wallet), 0)) > ?`;

export interface WalletRecord {
  readonly wallet: string;
  readonly serial: string;
  readonly license: Envelope<'wallet.license'>;
  readonly registeredMs: number;
  readonly revokedMs: number | null;
}

export interface ResultRecord {
  readonly requestId: string;
  readonly terminalId: string;
  readonly hash: string;
  readonly op: string;
  readonly wallet: string | null;
  readonly engineId: string | null;
  readonly status: 'approved' | 'declined';
  readonly code: string | null;
  readonly amountMinor: number;
  readonly currency: string;
  readonly holdUntilMs: number | null;
  readonly result: Uint8Array;
  readonly timeMs: number;
}

/** A terminal's report of what it could not settle (protocol op `incident`). */
export interface IncidentRecord {
  readonly requestId: string;
  readonly terminalId: string;
  readonly wallet: string;
  readonly kind: string;
  /** The fare left open at that passage (the wallet's next exit charges the trip). */
  readonly amountMinor: number;
  readonly currency: string;
  readonly detail: string;
  /** When it happened, by the terminal's clock (the report's signed time). */
  readonly timeMs: number;
  /** When the hub recorded it. */
  readonly recordedMs: number;
}

export interface PayoutRecord {
  readonly payoutId: string;
  readonly merchantId: string;
  readonly amountMinor: number;
  readonly currency: string;
  readonly state: 'recorded' | 'sent' | 'failed';
  readonly reference: string | null;
  readonly timeMs: number;
}

export interface DisclosureRecord {
  readonly id: number;
  readonly wallet: string;
  readonly operator: string;
  readonly reason: string;
  readonly timeMs: number;
}

export type Freshness = 'fresh' | 'retry' | 'replay';

/** A claim re-entered from the ledger (hub/service/claim-memo.ts), timed by its ledger row. */
export interface RestoredClaim {
  readonly challenge: string;
  readonly wallet: string;
  readonly requestId: string;
  readonly counter?: number | undefined;
  /** A fare's gate entry record, used once (claimEntryRecord). */
  readonly entryRecord?: string | undefined;
  /**
   * The fare paid nothing after all (its ledger row was declined, or refunded): the hub gave its
   * entry record back (releaseEntryRecordOf), so the restore gives it back too, never claims it.
   */
  readonly entryRecordGivenBack?: boolean | undefined;
  readonly timeMs: number;
}

export interface RegistryOpenOptions {
  /**
   * Checkpoint the WAL from a worker thread every N ms (0 = off, the default: SQLite's own
   * autocheckpoint on the committing thread). The hub turns it on: an autocheckpoint copies up to
   * 1,000 pages and fsyncs the file inside a commit on the event loop, a stall of several ms that
   * every request in flight then waits out; the writer's autocheckpoint stays as a backstop.
   */
  readonly backgroundCheckpointMs?: number;
  /**
   * Keys the negative caches make room for beyond the file's rows (default 262,144, ~320 KB
   * each); a cache is read afresh once pruning leaves it holding more than twice rows + this.
   */
  readonly negativeCacheHeadroom?: number;
  /**
   * Told when a deferred commit of claims and results fails (nobody awaits it). They stay queued
   * in memory, so a claim still refuses its replays, and new claims are refused until a commit
   * succeeds again.
   */
  readonly onCommitError?: (err: unknown) => void;
  /** Counter windows kept in memory (default 100,000 wallets). */
  readonly maxCachedWindows?: number;
  /**
   * Page cache in KiB (SQLite cache_size = -N; default 64 MiB). Used challenges are random, and
   * so are the request ids of terminals other than ours (newRequestId orders its ids by time):
   * each such insert lands in a random leaf of its index. With SQLite's default 2 MiB those
   * leaves no longer fit once the tables hold ~100,000 rows, and every insert reads its pages
   * back from the OS on the event loop.
   */
  readonly cacheKiB?: number;
}

const DEFAULT_CACHE_KIB = 65_536;

/** WAL pages before the committing thread checkpoints itself when a background checkpointer runs. */
const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;

export function migrateRegistry(db: Database.Database, migrations: readonly RegistryMigration[] = REGISTRY_MIGRATIONS): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)');
  const current = (db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
  const latest = migrations.reduce((m, x) => Math.max(m, x.version), 0);
  if (current > latest) throw new Error(`registry schema version ${current} is newer than this hub (${latest})`);
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }).immediate();
  }
  return Math.max(current, latest);
}

interface TerminalRow {
  terminal_id: string;
  kind: TerminalKindT;
  merchant_id: string;
  public_key: string;
  serial: string;
  certificate: string;
  enrolled_ms: number;
  revoked_ms: number | null;
  broker_password_scheme: 1 | 2;
}

function toTerminal(r: TerminalRow): TerminalRecord {
  return {
    terminalId: r.terminal_id,
    kind: r.kind,
    merchantId: r.merchant_id,
    publicKey: r.public_key,
    serial: r.serial,
    certificate: JSON.parse(r.certificate) as Envelope<'terminal.certificate'>,
    enrolledMs: r.enrolled_ms,
    revokedMs: r.revoked_ms,
    revoked: r.revoked_ms !== null,
    brokerPasswordScheme: r.broker_password_scheme,
  };
}

/** Registry meta key: claimsLedgerSeq(). */
const CLAIMS_LEDGER_SEQ = 'claims_ledger_seq';
/** Overspent ledger rows before this seq have had their wallet blocklisted (or an operator decide). */
const OVERSPEND_LEDGER_SEQ = 'overspend_ledger_seq';
const OVERSPENT_REASON = 'overspent offline';
/** Counter windows kept in memory (bounded) and written through on every accepted counter. */
const MAX_CACHED_WINDOWS = 100_000;
/**
 * Claims and signed results wait this long for a commit to join, so one commit carries many
 * (a commit per request cost the event loop ~75 µs). Until then they are served from memory.
 * Neither keeps money safe on its own: a claim that allows money travels in the ledger command's
 * memo (hub/service/claim-memo.ts), and a result is the cached answer for a retry (the ledger
 * has the settlement). After a crash both come back from the ledger.
 */
const COMMIT_DELAY_MS = 20;
/** ...unless this many are waiting. */
const COMMIT_MAX_PENDING = 512;

/** Older catalog versions kept parsed (catalogAt). */
const MAX_CACHED_CATALOG_VERSIONS = 32;

/** Wallet records read on every payment, kept parsed (bounded; this process is the file's only writer). */
const MAX_CACHED_WALLETS = 100_000;

/** Room for this many new keys in a negative cache's first layer (~320 KB); it grows by layers. */
const NEGATIVE_CACHE_HEADROOM = 1 << 18;

/**
 * A negative cache of one key column (its primary-key index), filled in the background. It is
 * read afresh once pruning has left it holding more than twice the table's rows.
 */
class KeyColumnCache {
  readonly filter: TableKeyFilter;
  readonly #rows: Database.Statement;
  readonly #headroom: number;

  constructor(db: Database.Database, table: 'results' | 'challenges', column: 'request_id' | 'challenge', headroom: number) {
    this.#headroom = headroom;
    // Rows live between the oldest and newest rowid: an upper bound without a count's full scan.
    this.#rows = db.prepare(`SELECT COALESCE(MAX(rowid) - MIN(rowid) + 1, 0) FROM ${table}`).pluck();
    const after = db.prepare(`SELECT ${column} FROM ${table} WHERE ${column} > ? ORDER BY ${column} LIMIT ?`).pluck();
    this.filter = new TableKeyFilter((key, limit) => after.all(key, limit) as string[], this.#expected());
  }

  #expected(): number {
    return (this.#rows.get() as number) + this.#headroom;
  }

  /** After a prune: refill when the filter's keys (stale ones included) outgrow the table. */
  pruned(): void {
    const expected = this.#expected();
    if (this.filter.keys > 2 * expected) this.filter.refill(expected);
  }
}

export class Registry implements TerminalDirectory {
  /**
   * The file, for reads and tests. Writes go through the methods: a challenge or result row
   * written past them would be missing from the negative caches and could pass as never used.
   */
  readonly db: Database.Database;
  readonly #terminals = new Map<string, TerminalRecord>();
  readonly #blocklist = new Map<string, string>();
  readonly #windows = new Map<string, CounterWindow>();
  readonly #wallets = new Map<string, WalletRecord>();
  /** Read on every request: kept parsed in memory, written through. */
  readonly #catalogs = new Map<string, CatalogVersion>();
  /** Older catalog versions read for offline sales (catalogAt), by merchant and version; bounded. */
  readonly #catalogHistory = new Map<string, CatalogVersion>();
  #fares: FareTableVersion[] | undefined;
  /** This turn's writes, committed together (see #commitPending). */
  readonly #pendingChallenges = new Map<string, { request_id: string; wallet: string; time_ms: number; ledger_seq: number | undefined }>();
  readonly #pendingCounters = new Set<string>();
  readonly #pendingResults = new Map<string, ResultRecord>();
  #flushing: Promise<void> | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  /** The last deferred commit's failure, until one succeeds (claims are refused meanwhile). */
  #commitFailure: unknown = undefined;
  readonly #onCommitError: (err: unknown) => void;
  readonly #maxCachedWindows: number;
  #products: Map<string, TicketProductT> | undefined;
  readonly #s: Record<string, Database.Statement>;
  readonly #checkpointer: Checkpointer | undefined;
  /** fsyncs the WAL off the event loop for durable() (none for an in-memory file). */
  readonly #walSyncer: WalSyncer | undefined;
  /** The first failed fsync: durable() refuses from then on. */
  #syncFailure: unknown;
  /**
   * Negative caches for the two lookups every request makes (README, "Negative caches"): every
   * request id with a stored result and every used challenge, file or queue. A new id or
   * challenge, the usual case, skips the read.
   */
  readonly #resultIds: KeyColumnCache;
  readonly #usedChallenges: KeyColumnCache;

  private constructor(db: Database.Database, options: RegistryOpenOptions, checkpointer?: Checkpointer) {
    this.db = db;
    this.#checkpointer = checkpointer;
    this.#walSyncer = db.memory ? undefined : new WalSyncer(`${db.name}-wal`);
    this.#onCommitError = options.onCommitError ?? (() => undefined);
    this.#maxCachedWindows = options.maxCachedWindows ?? MAX_CACHED_WINDOWS;
    const p = (sql: string): Database.Statement => db.prepare(sql);
    this.#s = {
      metaGet: p('SELECT value FROM meta WHERE key = ?'),
      syncNormal: p('PRAGMA synchronous = NORMAL'),
      syncFull: p('PRAGMA synchronous = FULL'),
      metaSet: p('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      termInsert: p(
        // The scheme named: the column's default (1) is for the rows enrolled before it existed.
        'INSERT INTO terminals (terminal_id, kind, merchant_id, public_key, serial, certificate, enrolled_ms, revoked_ms, broker_password_scheme) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 2)',
      ),
      termRevoke: p('UPDATE terminals SET revoked_ms = ? WHERE terminal_id = ? AND revoked_ms IS NULL'),
      // A new certificate moves a legacy (id-only) broker password to the certificate-bound one.
      termCertificate: p('UPDATE terminals SET serial = ?, certificate = ?, broker_password_scheme = 2 WHERE terminal_id = ? AND public_key = ? AND revoked_ms IS NULL'),
      walletInsert: p('INSERT INTO wallets (wallet, serial, license, registered_ms, revoked_ms) VALUES (?, ?, ?, ?, NULL)'),
      walletGet: p('SELECT * FROM wallets WHERE wallet = ?'),
      walletRevoke: p('UPDATE wallets SET revoked_ms = ? WHERE wallet = ? AND revoked_ms IS NULL'),
      walletLicenseSet: p('UPDATE wallets SET serial = ?, license = ? WHERE wallet = ? AND revoked_ms IS NULL'),
      supersededInsert: p('INSERT OR IGNORE INTO superseded_licenses (serial, wallet, not_after_ms, superseded_ms) VALUES (?, ?, ?, ?)'),
      supersededGet: p('SELECT superseded_ms FROM superseded_licenses WHERE serial = ? AND wallet = ?').pluck(),
      identityInsert: p('INSERT INTO identities (wallet, identity) VALUES (?, ?)'),
      identityGet: p('SELECT identity FROM identities WHERE wallet = ?'),
      disclosureInsert: p('INSERT INTO disclosure_log (wallet, operator, reason, time_ms) VALUES (?, ?, ?, ?)'),
      disclosureList: p('SELECT id, wallet, operator, reason, time_ms FROM disclosure_log ORDER BY id'),
      blockInsert: p('INSERT OR IGNORE INTO blocklist (wallet, reason, added_ms) VALUES (?, ?, ?)'),
      blockDelete: p('DELETE FROM blocklist WHERE wallet = ?'),
      blockAnnounced: p(`SELECT b.wallet ${UNEXPIRED_BLOCKLIST} ORDER BY b.added_ms DESC, b.wallet LIMIT ?`).pluck(),
      blockAnnouncedCount: p(`SELECT count(*) ${UNEXPIRED_BLOCKLIST}`).pluck(),
      overspendBlockInsert: p('INSERT OR IGNORE INTO overspend_blocks (seq) VALUES (?)'),
      overspendBlockGet: p('SELECT 1 FROM overspend_blocks WHERE seq = ?').pluck(),
      overspendBlockPrune: p('DELETE FROM overspend_blocks WHERE seq < ?'),
      counterGet: p('SELECT state FROM counters WHERE wallet = ?'),
      counterSet: p('INSERT INTO counters (wallet, state) VALUES (?, ?) ON CONFLICT(wallet) DO UPDATE SET state = excluded.state'),
      challengeGet: p('SELECT request_id FROM challenges WHERE challenge = ?'),
      challengeInsert: p('INSERT INTO challenges (challenge, wallet, request_id, time_ms) VALUES (?, ?, ?, ?)'),
      challengeRestore: p('INSERT OR IGNORE INTO challenges (challenge, wallet, request_id, time_ms) VALUES (?, ?, ?, ?)'),
      challengePrune: p('DELETE FROM challenges WHERE rowid IN (SELECT rowid FROM challenges WHERE time_ms < ? ORDER BY time_ms LIMIT ?)'),
      resultPrune: p('DELETE FROM results WHERE rowid IN (SELECT rowid FROM results WHERE time_ms < ? ORDER BY time_ms LIMIT ?)'),
      catalogInsert: p('INSERT INTO catalogs (merchant_id, version, articles, time_ms) VALUES (?, ?, ?, ?)'),
      catalogLatest: p('SELECT * FROM catalogs WHERE merchant_id = ? ORDER BY version DESC LIMIT 1'),
      catalogVersionAt: p('SELECT version FROM catalogs WHERE merchant_id = ? AND time_ms <= ? ORDER BY version DESC LIMIT 1').pluck(),
      catalogOldestVersion: p('SELECT MIN(version) FROM catalogs WHERE merchant_id = ?').pluck(),
      catalogGet: p('SELECT * FROM catalogs WHERE merchant_id = ? AND version = ?'),
      // Versions a later one had replaced by then: never in force at or after that time.
      catalogPrune: p('DELETE FROM catalogs WHERE merchant_id = ? AND version < (SELECT MAX(version) FROM catalogs WHERE merchant_id = ? AND time_ms <= ?)'),
      catalogAllLatest: p(
        'SELECT c.* FROM catalogs c JOIN (SELECT merchant_id, MAX(version) AS v FROM catalogs GROUP BY merchant_id) m ON c.merchant_id = m.merchant_id AND c.version = m.v ORDER BY c.merchant_id',
      ),
      fareInsert: p('INSERT INTO fares (version, fare_table, time_ms) VALUES (?, ?, ?)'),
      fareAll: p('SELECT * FROM fares ORDER BY version'),
      productsClear: p('DELETE FROM products'),
      productInsert: p('INSERT INTO products (name, product) VALUES (?, ?)'),
      productAll: p('SELECT product FROM products ORDER BY name'),
      resultGet: p('SELECT * FROM results WHERE request_id = ?'),
      resultInsert: p(
        `INSERT OR IGNORE INTO results (request_id, terminal_id, hash, op, wallet, engine_id, status, code, amount_minor, currency, hold_until_ms, result, time_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      ticketInsert: p('INSERT OR IGNORE INTO tickets (ticket_id, wallet, product, request_id, issued_ms) VALUES (?, ?, ?, ?, ?)'),
      ticketUseGet: p('SELECT request_id FROM ticket_uses WHERE ticket_id = ?'),
      ticketGet: p('SELECT 1 FROM tickets WHERE ticket_id = ?'),
      ticketUseInsert: p('INSERT INTO ticket_uses (ticket_id, request_id, terminal_id, station, used_ms) VALUES (?, ?, ?, ?, ?)'),
      ticketUseRelease: p('DELETE FROM ticket_uses WHERE ticket_id = ? AND request_id = ?'),
      ticketVoided: p(`SELECT ticket_id FROM ticket_uses WHERE terminal_id = '${VOID_TERMINAL}' AND station = '${VOID_STATION}' AND used_ms > ? ORDER BY used_ms DESC, ticket_id LIMIT ?`).pluck(),
      entryGet: p('SELECT request_id FROM entry_records WHERE record_id = ?'),
      entryInsert: p('INSERT INTO entry_records (record_id, request_id) VALUES (?, ?)'),
      entryRelease: p('DELETE FROM entry_records WHERE request_id = ?'),
      entryContest: p('UPDATE entry_records SET contested_by = ? WHERE record_id = ? AND contested_by IS NULL'),
      entryContestedBy: p('SELECT contested_by FROM entry_records WHERE request_id = ? AND contested_by IS NOT NULL'),
      entryRestore: p('INSERT OR IGNORE INTO entry_records (record_id, request_id) VALUES (?, ?)'),
      // Only this fare's claim: a later fare may have claimed the record since it was given back.
      entryRestoreGivenBack: p('DELETE FROM entry_records WHERE record_id = ? AND request_id = ?'),
      receiptInsert: p('INSERT OR IGNORE INTO receipts (request_id, outcome, terminal_id, time_ms) VALUES (?, ?, ?, ?)'),
      receiptOutcomes: p('SELECT outcome FROM receipts WHERE request_id = ?'),
      incidentInsert: p(
        `INSERT OR IGNORE INTO incidents (request_id, terminal_id, wallet, kind, amount_minor, currency, detail, time_ms, recorded_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // By when the hub recorded them: a terminal's clock (a Pi booted without RTC) may be far off.
      incidentList: p('SELECT * FROM incidents ORDER BY recorded_ms DESC, rowid DESC LIMIT ?'),
      incidentListWallet: p('SELECT * FROM incidents WHERE wallet = ? ORDER BY recorded_ms DESC, rowid DESC LIMIT ?'),
      incidentCount: p('SELECT count(*) AS n FROM incidents'),
      incidentPrune: p('DELETE FROM incidents WHERE rowid IN (SELECT rowid FROM incidents WHERE recorded_ms < ? ORDER BY recorded_ms LIMIT ?)'),
      payoutUpsert: p(
        `INSERT INTO payouts (payout_id, merchant_id, amount_minor, currency, state, reference, time_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(payout_id) DO UPDATE SET state = excluded.state, reference = excluded.reference`,
      ),
      payoutGet: p('SELECT * FROM payouts WHERE payout_id = ?'),
      payoutList: p('SELECT * FROM payouts ORDER BY time_ms DESC LIMIT ?'),
      hubKeysAll: p('SELECT public_key, file, not_before_ms, not_after_ms FROM hub_keys ORDER BY not_before_ms'),
      hubKeysClear: p('DELETE FROM hub_keys'),
      hubKeyInsert: p('INSERT INTO hub_keys (public_key, file, not_before_ms, not_after_ms) VALUES (?, ?, ?, ?)'),
    };
    for (const r of db.prepare('SELECT * FROM terminals').all() as TerminalRow[]) this.#terminals.set(r.terminal_id, toTerminal(r));
    for (const r of db.prepare('SELECT wallet, reason FROM blocklist').all() as Array<{ wallet: string; reason: string }>) {
      this.#blocklist.set(r.wallet, r.reason);
    }
    const headroom = options.negativeCacheHeadroom ?? NEGATIVE_CACHE_HEADROOM;
    this.#resultIds = new KeyColumnCache(db, 'results', 'request_id', headroom);
    this.#usedChallenges = new KeyColumnCache(db, 'challenges', 'challenge', headroom);
  }

  static open(file: string, options: RegistryOpenOptions = {}): Registry {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.pragma(`cache_size = -${options.cacheKiB ?? DEFAULT_CACHE_KIB}`);
    migrateRegistry(db);
    const everyMs = options.backgroundCheckpointMs ?? 0;
    if (everyMs > 0 && file !== ':memory:') {
      db.pragma(`wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
      return new Registry(db, options, new Checkpointer(file, everyMs));
    }
    return new Registry(db, options);
  }

  /**
   * Commits what is still queued, then closes the file. The returned promise resolves once the
   * background checkpointer has let go of the file too (await it before touching the file).
   */
  close(): Promise<void> {
    if (!this.db.open) return Promise.resolve();
    this.#resultIds.filter.stop();
    this.#usedChallenges.filter.stop();
    const stopped = Promise.all([this.#checkpointer?.stop(), this.#walSyncer?.close()]).then(() => undefined);
    this.#commitPending();
    this.db.close();
    return stopped;
  }

  /**
   * Runs fn's writes at synchronous=NORMAL: per-request state, an fsync each would stall the event
   * loop. Inside a transaction SQLite cannot change the level: fn then commits with it, at FULL.
   */
  #relaxed<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    this.#s.syncNormal!.run();
    try {
      return fn();
    } finally {
      this.#s.syncFull!.run();
    }
  }

  /** Keys each negative cache holds (its table's at its last fill, and every one added since). */
  negativeCacheKeys(): { results: number; challenges: number } {
    return { results: this.#resultIds.filter.keys, challenges: this.#usedChallenges.filter.keys };
  }

  /** Resolves true once both negative caches hold their whole table (they answer "maybe" until then). */
  async negativeCachesFilled(): Promise<boolean> {
    const filled = await Promise.all([this.#resultIds.filter.filled(), this.#usedChallenges.filter.filled()]);
    return filled.every(Boolean);
  }

  /** Runs fn in one immediate transaction (the CLI's "nothing half-written"). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  meta(key: string): number {
    return (this.#s.metaGet!.get(key) as { value: number } | undefined)?.value ?? 0;
  }

  #setMeta(key: string, value: number): void {
    this.#s.metaSet!.run(key, value);
  }

  // ---------- hub signing keys (hub-keyring.ts) ----------

  hubKeys(): HubKeyEntry[] {
    const rows = this.#s.hubKeysAll!.all() as Array<{ public_key: string; file: string; not_before_ms: number; not_after_ms: number }>;
    return rows.map((r) => ({ publicKey: r.public_key, file: r.file, notBefore: r.not_before_ms, notAfter: r.not_after_ms }));
  }

  /** Replaces the ring and bumps the keys announcement version, in one transaction. */
  replaceHubKeys(keys: readonly HubKeyEntry[]): void {
    this.transaction(() => {
      this.#s.hubKeysClear!.run();
      for (const k of keys) this.#s.hubKeyInsert!.run(k.publicKey, k.file, k.notBefore, k.notAfter);
      this.#setMeta('keys_version', this.meta('keys_version') + 1);
    });
  }

  // ---------- terminals (seed 001 certificate authority) ----------

  lookupTerminal(terminalId: string): TerminalInfo | undefined {
    const t = this.#terminals.get(terminalId);
    return t ? { publicKey: t.publicKey, kind: t.kind, merchantId: t.merchantId, revoked: t.revoked } : undefined;
  }

  terminal(terminalId: string): TerminalRecord | undefined {
    return this.#terminals.get(terminalId);
  }

  terminals(): TerminalRecord[] {
    return [...this.#terminals.values()];
  }

  /** Every enrolled terminal (the MQTT layer writes Mosquitto's password/ACL files from it). */
  listTerminals(): Array<TerminalInfo & { terminalId: string }> {
    return this.terminals().map((t) => ({ terminalId: t.terminalId, publicKey: t.publicKey, kind: t.kind, merchantId: t.merchantId, revoked: t.revoked }));
  }

  insertTerminal(cert: Envelope<'terminal.certificate'>, nowMs: number): TerminalRecord {
    const b = cert.body;
    this.#s.termInsert!.run(b.terminalId, b.kind, b.merchantId, b.publicKey, b.serial, JSON.stringify(cert), nowMs);
    const rec = toTerminal({
      terminal_id: b.terminalId,
      kind: b.kind,
      merchant_id: b.merchantId,
      public_key: b.publicKey,
      serial: b.serial,
      certificate: JSON.stringify(cert),
      enrolled_ms: nowMs,
      revoked_ms: null,
      broker_password_scheme: 2,
    });
    this.#terminals.set(b.terminalId, rec);
    return rec;
  }

  /**
   * A new certificate for an enrolled, unrevoked terminal with the same key (after a hub key
   * rotation, or to rotate its broker password). Its broker password scheme becomes 2 (bound to
   * the new certificate), from 1 too.
   */
  replaceCertificate(cert: Envelope<'terminal.certificate'>): TerminalRecord | undefined {
    const b = cert.body;
    const t = this.#terminals.get(b.terminalId);
    if (!t || t.revoked || t.publicKey !== b.publicKey) return undefined;
    if (this.#s.termCertificate!.run(b.serial, JSON.stringify(cert), b.terminalId, b.publicKey).changes !== 1) return undefined;
    const rec = { ...t, serial: b.serial, certificate: cert, brokerPasswordScheme: 2 as const };
    this.#terminals.set(b.terminalId, rec);
    return rec;
  }

  /** Returns false when unknown or already revoked. Bumps the keys announcement version. */
  revokeTerminal(terminalId: string, nowMs: number): boolean {
    const t = this.#terminals.get(terminalId);
    if (!t || t.revoked) return false;
    this.transaction(() => {
      this.#s.termRevoke!.run(nowMs, terminalId);
      this.#setMeta('keys_version', this.meta('keys_version') + 1);
    });
    this.#terminals.set(terminalId, { ...t, revoked: true, revokedMs: nowMs });
    return true;
  }

  revokedTerminals(): string[] {
    return [...this.#terminals.values()].filter((t) => t.revoked).map((t) => t.terminalId);
  }

  // ---------- wallets and the issuer's identity table (seed 002) ----------

  insertWallet(license: Envelope<'wallet.license'>, identity: Record<string, unknown>, nowMs: number): void {
    this.transaction(() => {
      this.#s.walletInsert!.run(license.body.wallet, license.body.serial, JSON.stringify(license), nowMs);
      this.#s.identityInsert!.run(license.body.wallet, JSON.stringify(identity));
    });
  }

  wallet(wallet: string): WalletRecord | undefined {
    const cached = this.#wallets.get(wallet);
    if (cached) return cached;
    const rec = this.#readWallet(wallet);
    if (rec) {
      if (this.#wallets.size >= MAX_CACHED_WALLETS) this.#wallets.delete(this.#wallets.keys().next().value as string);
      this.#wallets.set(wallet, rec);
    }
    return rec;
  }

  #readWallet(wallet: string): WalletRecord | undefined {
    const r = this.#s.walletGet!.get(wallet) as
      | { wallet: string; serial: string; license: string; registered_ms: number; revoked_ms: number | null }
      | undefined;
    if (!r) return undefined;
    return {
      wallet: r.wallet,
      serial: r.serial,
      license: JSON.parse(r.license) as Envelope<'wallet.license'>,
      registeredMs: r.registered_ms,
      revokedMs: r.revoked_ms,
    };
  }

  /**
   * Puts a new license (its own serial) in force for an unrevoked wallet; false when revoked or
   * unknown. The one it replaces is kept as superseded (isSupersededLicense), in the same transaction.
   */
  replaceLicense(wallet: string, license: Envelope<'wallet.license'>, nowMs: number): boolean {
    const old = this.wallet(wallet);
    this.#wallets.delete(wallet);
    if (!old) return false;
    return this.transaction(() => {
      if (this.#s.walletLicenseSet!.run(license.body.serial, JSON.stringify(license), wallet).changes === 0) return false;
      this.#s.supersededInsert!.run(old.serial, wallet, old.license.body.notAfter, nowMs);
      // Which blocklisted wallets are announced depends on their licenses' expiry: a new version,
      // or a terminal holding this version without the wallet would never take it back.
      if (this.#blocklist.has(wallet)) this.#blocklistChanged(nowMs);
      return true;
    });
  }

  /** `serial` is a license of this wallet that a reissue replaced (honoured until it expires). */
  isSupersededLicense(wallet: string, serial: string): boolean {
    return this.supersededAt(wallet, serial) !== undefined;
  }

  /** When a reissue replaced this license of the wallet; undefined if it never did. */
  supersededAt(wallet: string, serial: string): number | undefined {
    return this.#s.supersededGet!.get(serial, wallet) as number | undefined;
  }

  revokeWallet(wallet: string, nowMs: number): boolean {
    this.#wallets.delete(wallet);
    return this.#s.walletRevoke!.run(nowMs, wallet).changes > 0;
  }

  /** seed 001: disclosure is an explicit operator action, logged before the identity is read. */
  revealIdentity(wallet: string, operator: string, reason: string, nowMs: number): Record<string, unknown> | undefined {
    return this.transaction(() => {
      const r = this.#s.identityGet!.get(wallet) as { identity: string } | undefined;
      if (!r) return undefined;
      this.#s.disclosureInsert!.run(wallet, operator, reason, nowMs);
      return JSON.parse(r.identity) as Record<string, unknown>;
    });
  }

  disclosureLog(): DisclosureRecord[] {
    return (this.#s.disclosureList!.all() as Array<{ id: number; wallet: string; operator: string; reason: string; time_ms: number }>).map((r) => ({
      id: r.id,
      wallet: r.wallet,
      operator: r.operator,
      reason: r.reason,
      timeMs: r.time_ms,
    }));
  }

  // ---------- blocklist (versioned, announced) ----------

  isBlocklisted(wallet: string): boolean {
    return this.#blocklist.has(wallet);
  }

  blocklist(): Array<{ wallet: string; reason: string }> {
    return [...this.#blocklist].map(([wallet, reason]) => ({ wallet, reason })).sort((a, b) => (a.wallet < b.wallet ? -1 : 1));
  }

  /**
   * The blocklisted wallets terminals need to know, at most `cap`, sorted: those whose license has
   * expired are left off (every terminal refuses an expired license anyway; a revoked wallet stays
   * listed for good, so the list would otherwise only grow), and past `cap` the oldest entries.
   * `leftOff` counts the unexpired ones that did not fit.
   */
  announcedBlocklist(nowMs: number, cap: number): { wallets: string[]; leftOff: number } {
    const rows = this.#s.blockAnnounced!.all(nowMs, cap + 1) as string[];
    const leftOff = rows.length > cap ? (this.#s.blockAnnouncedCount!.get(nowMs) as number) - cap : 0;
    return { wallets: rows.slice(0, cap).sort(), leftOff };
  }

  blocklistVersion(): number {
    return this.meta('blocklist_version');
  }

  /** Returns true when the list changed (and its version went up). */
  blocklistAdd(wallet: string, reason: string, nowMs: number): boolean {
    if (this.#blocklist.has(wallet)) return false;
    this.transaction(() => this.#blockInsert(wallet, reason, nowMs));
    this.#blocklist.set(wallet, reason);
    return true;
  }

  /**
   * Blocklists the wallet an overspent ledger row (`ledgerSeq`) overdrew and records the row as
   * handled, in one transaction. Returns true when the list changed.
   */
  blocklistOverspent(wallet: string, ledgerSeq: number, nowMs: number): boolean {
    const adds = !this.#blocklist.has(wallet);
    this.transaction(() => {
      this.#s.overspendBlockInsert!.run(ledgerSeq);
      if (adds) this.#blockInsert(wallet, OVERSPENT_REASON, nowMs);
    });
    if (adds) this.#blocklist.set(wallet, OVERSPENT_REASON);
    return adds;
  }

  /**
   * Overspent ledger rows from this seq on may lack their blocklisting (restoreOverspendBlocks);
   * -1 after the upgrade of a registry in use: every row logged until the next start counts as handled.
   */
  overspendLedgerSeq(): number {
    return this.meta(OVERSPEND_LEDGER_SEQ);
  }

  /**
   * Blocklists the wallets of overspent ledger rows from overspendLedgerSeq() on that this file
   * has not handled: their blocklisting was lost to a crash or power cut after the ledger's commit.
   * A row it handled is not blocked again, so a wallet an operator lifted stays lifted. Then every
   * row before `throughLedgerSeq` counts as handled; after the `last` page, the rows it recorded
   * beyond the ledger's end go too (a ledger restored from a backup gives those seqs out again).
   * One transaction; returns the wallets added.
   */
  restoreOverspendBlocks(rows: readonly { seq: number; walletId: string }[], throughLedgerSeq: number, last: boolean, nowMs: number): string[] {
    const added = new Set<string>();
    this.transaction(() => {
      for (const r of rows) {
        if (this.#s.overspendBlockGet!.get(r.seq) !== undefined || this.#blocklist.has(r.walletId) || added.has(r.walletId)) continue;
        this.#blockInsert(r.walletId, OVERSPENT_REASON, nowMs);
        added.add(r.walletId);
      }
      this.#s.overspendBlockPrune!.run(last ? Number.MAX_SAFE_INTEGER : throughLedgerSeq);
      this.#setMeta(OVERSPEND_LEDGER_SEQ, throughLedgerSeq);
    });
    for (const wallet of added) this.#blocklist.set(wallet, OVERSPENT_REASON);
    return [...added];
  }

  /** Inside a transaction: the row, and a new list version. */
  #blockInsert(wallet: string, reason: string, nowMs: number): void {
    this.#s.blockInsert!.run(wallet, reason, nowMs);
    this.#blocklistChanged(nowMs);
  }

  #blocklistChanged(nowMs: number): void {
    this.#setMeta('blocklist_version', this.meta('blocklist_version') + 1);
    this.#setMeta('blocklist_time', nowMs);
  }

  blocklistRemove(wallet: string, nowMs: number): boolean {
    if (!this.#blocklist.has(wallet)) return false;
    this.transaction(() => {
      this.#s.blockDelete!.run(wallet);
      this.#blocklistChanged(nowMs);
    });
    this.#blocklist.delete(wallet);
    return true;
  }

  // ---------- replay protection ----------

  #window(wallet: string): CounterWindow {
    let w = this.#windows.get(wallet);
    if (!w) {
      w = this.#loadWindow(wallet);
      if (this.#windows.size >= this.#maxCachedWindows) this.#evictWindow();
      this.#windows.set(wallet, w);
    }
    return w;
  }

  #loadWindow(wallet: string): CounterWindow {
    const r = this.#s.counterGet!.get(wallet) as { state: string } | undefined;
    return new CounterWindow(1024, r ? (JSON.parse(r.state) as { highest: number; mask?: string; seen?: number[] }) : undefined);
  }

  /** Drops the oldest window whose counters are in the file: a queued one is the only copy. */
  #evictWindow(): void {
    for (const wallet of this.#windows.keys()) {
      if (this.#pendingCounters.has(wallet)) continue;
      this.#windows.delete(wallet);
      return;
    }
  }

  /**
   * Claims a wallet challenge (and counter, when given) for a request: 'fresh' the first time,
   * 'retry' when the same request id comes back (the terminal's retry after a lost reply),
   * 'replay' when another request already used the challenge or the counter. Decided at once
   * (in memory + file); the write joins a deferred group commit (COMMIT_DELAY_MS). Throws the
   * last commit's error while the file cannot be written (after one more try). `ledgerSeq`: the
   * ledger's next seq when the claim is made (claimsLedgerSeq).
   */
  claimFreshness(input: { challenge: string; wallet: string; requestId: string; counter?: number; nowMs: number; ledgerSeq?: number }): Freshness {
    if (this.#commitFailure !== undefined) this.#commitPending();
    const pending = this.#pendingChallenges.get(input.challenge);
    const seen = pending ?? (this.#usedChallenges.filter.mightContain(input.challenge) ? (this.#s.challengeGet!.get(input.challenge) as { request_id: string } | undefined) : undefined);
    if (seen) return seen.request_id === input.requestId ? 'retry' : 'replay';
    if (input.counter !== undefined) {
      if (!this.#window(input.wallet).accept(input.counter)) return 'replay';
      this.#pendingCounters.add(input.wallet);
    }
    this.#pendingChallenges.set(input.challenge, { request_id: input.requestId, wallet: input.wallet, time_ms: input.nowMs, ledger_seq: input.ledgerSeq });
    this.#usedChallenges.filter.add(input.challenge);
    this.#scheduleCommit();
    return 'fresh';
  }

  /**
   * The ledger's next seq when the last committed claim was made (0: never recorded). This file
   * keeps a prefix of its claims in the order they were made, so every claim it can have lost
   * allowed a ledger row at or after this seq (hub/service/claim-memo.ts).
   */
  claimsLedgerSeq(): number {
    this.#commitPending();
    return this.meta(CLAIMS_LEDGER_SEQ);
  }

  /**
   * Enters claims this file lost (its last commits, after a crash or power loss) but the ledger
   * kept, in one transaction: each challenge and entry record it lacks, each counter into its
   * wallet's window. Claims it has already change nothing. An entry record its fare gave back
   * (entryRecordGivenBack) is given back again (the release may be what was lost), not claimed;
   * the challenge and counter stay claimed all the same. `throughLedgerSeq`: every claim of the ledger's rows
   * before this seq is now here; it becomes claimsLedgerSeq(), lower than before too (the ledger
   * may have lost rows whose seqs a claim had recorded). Returns how many challenges were missing.
   */
  restoreClaims(claims: readonly RestoredClaim[], throughLedgerSeq: number): number {
    this.#commitPending();
    // Windows of their own, not the cache: it may evict one before it is written.
    const windows = new Map<string, CounterWindow>();
    let missing = 0;
    this.transaction(() => {
      for (const c of claims) {
        missing += this.#s.challengeRestore!.run(c.challenge, c.wallet, c.requestId, c.timeMs).changes;
        this.#usedChallenges.filter.add(c.challenge);
        if (c.entryRecord !== undefined) this.#restoreEntryRecord(c.entryRecord, c.requestId, c.entryRecordGivenBack === true);
        if (c.counter === undefined) continue;
        let w = windows.get(c.wallet);
        if (!w) windows.set(c.wallet, (w = this.#loadWindow(c.wallet)));
        w.accept(c.counter);
      }
      for (const [wallet, w] of windows) this.#s.counterSet!.run(wallet, JSON.stringify(w.state()));
      this.#setMeta(CLAIMS_LEDGER_SEQ, throughLedgerSeq);
    });
    // The cached windows (if any) are older than the file now.
    for (const wallet of windows.keys()) this.#windows.delete(wallet);
    return missing;
  }

  /**
   * Claims are restored in ledger seq order, so a record given back and claimed again by a later
   * fare ends with that fare: the earlier row releases only its own claim, the later one inserts.
   */
  #restoreEntryRecord(recordId: string, requestId: string, givenBack: boolean): void {
    if (givenBack) this.#s.entryRestoreGivenBack!.run(recordId, requestId);
    else this.#s.entryRestore!.run(recordId, requestId);
  }

  /**
   * Resolves once every claim and result queued so far, and every per-request write before them,
   * is on disk: the queue commits now, then the WAL is fsynced off the event loop (one fsync for
   * every caller waiting meanwhile). For the claims no ledger row carries — a ticket use, a
   * zero-fare exit's entry record and challenge, a history query's challenge — whose replies must
   * not outlive a power cut.
   */
  async durable(): Promise<void> {
    // After a failed fsync the kernel may have dropped the pages and a later fsync succeed:
    // nothing is durable any more until the file is reopened (the hub restarted).
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    this.#commitPending();
    try {
      await this.#walSyncer?.sync();
    } catch (err) {
      this.#syncFailure ??= err;
      this.#onCommitError(err);
      throw err;
    }
  }

  /** Resolves once every write queued so far (claims, results) is committed; rejects if that fails. */
  flush(): Promise<void> {
    if (this.#commitTimer !== undefined || this.#commitFailure !== undefined) this.#scheduleFlush();
    return this.#flushing ?? Promise.resolve();
  }

  /** Queued writes join the next commit, one COMMIT_DELAY_MS from now. */
  #scheduleCommit(): void {
    if (this.#flushing) return;
    if (this.#pendingResults.size + this.#pendingChallenges.size >= COMMIT_MAX_PENDING) return this.#scheduleFlush();
    if (this.#commitTimer !== undefined) return;
    this.#commitTimer = setTimeout(() => this.#scheduleFlush(), COMMIT_DELAY_MS);
    // Nothing is lost to an exit while it waits: close() commits what is pending.
    this.#commitTimer.unref();
  }

  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.#flushing = undefined;
        try {
          this.#commitPending();
          resolve();
        } catch (err) {
          this.#onCommitError(err);
          reject(err);
        }
      });
    });
    // A failed flush is reported to whoever awaits it and to onCommitError; never an unhandled rejection.
    this.#flushing.catch(() => undefined);
  }

  /** One transaction for everything queued (per-request commits cost 5x the ledger's). */
  #commitPending(): void {
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    if (!this.db.open) return;
    const challenges = [...this.#pendingChallenges];
    const counters = [...this.#pendingCounters];
    const results = [...this.#pendingResults.values()];
    if (challenges.length === 0 && counters.length === 0 && results.length === 0) return;
    const write = (): void => {
      for (const wallet of counters) this.#s.counterSet!.run(wallet, JSON.stringify(this.#window(wallet).state()));
      let ledgerSeq = 0;
      for (const [challenge, c] of challenges) {
        this.#s.challengeInsert!.run(challenge, c.wallet, c.request_id, c.time_ms);
        ledgerSeq = Math.max(ledgerSeq, c.ledger_seq ?? 0);
      }
      if (ledgerSeq > this.meta(CLAIMS_LEDGER_SEQ)) this.#setMeta(CLAIMS_LEDGER_SEQ, ledgerSeq);
      for (const r of results) this.#insertResult(r);
    };
    try {
      this.#relaxed(() => this.transaction(write));
    } catch (err) {
      // Everything stays queued, and the windows ahead of the file: money may have moved on these
      // claims (the ledger has them), so their replays must still be refused.
      this.#commitFailure = err;
      throw err;
    }
    this.#commitFailure = undefined;
    for (const [challenge] of challenges) this.#pendingChallenges.delete(challenge);
    for (const wallet of counters) this.#pendingCounters.delete(wallet);
    for (const r of results) if (this.#pendingResults.get(r.requestId) === r) this.#pendingResults.delete(r.requestId);
  }

  /** Drops up to `limit` used challenges older than `beforeMs`, oldest first. */
  pruneChallenges(beforeMs: number, limit: number): number {
    this.#commitPending();
    const pruned = this.#relaxed(() => this.#s.challengePrune!.run(beforeMs, limit).changes);
    if (pruned > 0) this.#usedChallenges.pruned();
    return pruned;
  }

  /**
   * Drops up to `limit` stored results older than `beforeMs` (the table grows by one signed result per
   * request). Money stays safe without them: the ledger keeps every request id, so a late retry
   * settles nothing twice, and an operator refund finds the settlement in the ledger.
   */
  pruneResults(beforeMs: number, limit: number): number {
    this.#commitPending();
    const pruned = this.#relaxed(() => this.#s.resultPrune!.run(beforeMs, limit).changes);
    if (pruned > 0) this.#resultIds.pruned();
    return pruned;
  }

  // ---------- catalogs, fares, ticket products (versioned rules) ----------

  /**
   * A new version, in force from nowMs. `keepSinceMs`: versions a later one had replaced by then
   * are dropped in the same transaction (the history grows only here; an offline sale older than
   * that is priced by the oldest version kept, catalogAt).
   */
  putCatalog(merchantId: string, articles: readonly ArticleT[], nowMs: number, keepSinceMs?: number): CatalogVersion {
    const version = (this.latestCatalog(merchantId)?.version ?? 0) + 1;
    this.transaction(() => {
      this.#s.catalogInsert!.run(merchantId, version, JSON.stringify(articles), nowMs);
      if (keepSinceMs !== undefined) this.#s.catalogPrune!.run(merchantId, merchantId, keepSinceMs);
    });
    const v = { merchantId, version, articles, timeMs: nowMs };
    this.#catalogs.set(merchantId, v);
    return v;
  }

  /**
   * The merchant's version in force at timeMs: the newest version (by number) imported at or
   * before it, as fareTableAt for fares; the oldest one kept when timeMs is older than all
   * (clock trouble, or older than the history kept). The latest version answers without a read;
   * older ones are read from the file and a few kept parsed (an offline queue forwarded after a
   * price change asks for the same one many times).
   */
  catalogAt(merchantId: string, timeMs: number): CatalogVersion | undefined {
    const latest = this.latestCatalog(merchantId);
    if (!latest || latest.timeMs <= timeMs) return latest;
    const version = (this.#s.catalogVersionAt!.get(merchantId, timeMs) ?? this.#s.catalogOldestVersion!.get(merchantId)) as number | null | undefined;
    if (version === null || version === undefined) return latest;
    return this.catalogVersion(merchantId, version) ?? latest;
  }

  /** One version of the merchant's catalog, while it is kept (putCatalog's keepSinceMs); a few kept parsed. */
  catalogVersion(merchantId: string, version: number): CatalogVersion | undefined {
    const latest = this.latestCatalog(merchantId);
    if (latest?.version === version) return latest;
    const key = `${merchantId}\n${version}`;
    const cached = this.#catalogHistory.get(key);
    if (cached) return cached;
    const r = this.#s.catalogGet!.get(merchantId, version) as { merchant_id: string; version: number; articles: string; time_ms: number } | undefined;
    if (!r) return undefined;
    const v: CatalogVersion = { merchantId: r.merchant_id, version: r.version, articles: JSON.parse(r.articles) as ArticleT[], timeMs: r.time_ms };
    if (this.#catalogHistory.size >= MAX_CACHED_CATALOG_VERSIONS) this.#catalogHistory.delete(this.#catalogHistory.keys().next().value as string);
    this.#catalogHistory.set(key, v);
    return v;
  }

  latestCatalog(merchantId: string): CatalogVersion | undefined {
    const cached = this.#catalogs.get(merchantId);
    if (cached) return cached;
    const v = this.#readLatestCatalog(merchantId);
    if (v) this.#catalogs.set(merchantId, v);
    return v;
  }

  #readLatestCatalog(merchantId: string): CatalogVersion | undefined {
    const r = this.#s.catalogLatest!.get(merchantId) as { merchant_id: string; version: number; articles: string; time_ms: number } | undefined;
    return r ? { merchantId: r.merchant_id, version: r.version, articles: JSON.parse(r.articles) as ArticleT[], timeMs: r.time_ms } : undefined;
  }

  catalogs(): CatalogVersion[] {
    return (this.#s.catalogAllLatest!.all() as Array<{ merchant_id: string; version: number; articles: string; time_ms: number }>).map((r) => ({
      merchantId: r.merchant_id,
      version: r.version,
      articles: JSON.parse(r.articles) as ArticleT[],
      timeMs: r.time_ms,
    }));
  }

  putFares(table: FareTable, nowMs: number): FareTableVersion {
    const all = this.fareVersions();
    const version = (all.at(-1)?.version ?? 0) + 1;
    this.#s.fareInsert!.run(version, JSON.stringify(table), nowMs);
    const v = { version, table, timeMs: nowMs };
    this.#fares = [...all, v];
    return v;
  }

  fareVersions(): FareTableVersion[] {
    if (this.#fares) return this.#fares;
    this.#fares = (this.#s.fareAll!.all() as Array<{ version: number; fare_table: string; time_ms: number }>).map((r) => ({
      version: r.version,
      table: JSON.parse(r.fare_table) as FareTable,
      timeMs: r.time_ms,
    }));
    return this.#fares;
  }

  /** Replaces the ticket products; their version and time are what the announcement carries. */
  putProducts(products: readonly TicketProductT[], nowMs: number): number {
    this.#products = undefined;
    return this.transaction(() => {
      this.#s.productsClear!.run();
      for (const p of products) this.#s.productInsert!.run(p.name, JSON.stringify(p));
      const v = this.meta('products_version') + 1;
      this.#setMeta('products_version', v);
      this.#setMeta('products_time', nowMs);
      return v;
    });
  }

  product(name: string): TicketProductT | undefined {
    this.#products ??= new Map(this.products().map((p) => [p.name, p]));
    return this.#products.get(name);
  }

  products(): TicketProductT[] {
    return (this.#s.productAll!.all() as Array<{ product: string }>).map((r) => JSON.parse(r.product) as TicketProductT);
  }

  // ---------- signed results, tickets, entry records, receipts ----------

  result(requestId: string): ResultRecord | undefined {
    const pending = this.#pendingResults.get(requestId);
    if (pending) return pending;
    if (!this.#resultIds.filter.mightContain(requestId)) return undefined;
    const r = this.#s.resultGet!.get(requestId) as
      | {
          request_id: string;
          terminal_id: string;
          hash: string;
          op: string;
          wallet: string | null;
          engine_id: string | null;
          status: 'approved' | 'declined';
          code: string | null;
          amount_minor: number;
          currency: string;
          hold_until_ms: number | null;
          result: Buffer;
          time_ms: number;
        }
      | undefined;
    if (!r) return undefined;
    return {
      requestId: r.request_id,
      terminalId: r.terminal_id,
      hash: r.hash,
      op: r.op,
      wallet: r.wallet,
      engineId: r.engine_id,
      status: r.status,
      code: r.code,
      amountMinor: r.amount_minor,
      currency: r.currency,
      holdUntilMs: r.hold_until_ms,
      result: new Uint8Array(r.result),
      timeMs: r.time_ms,
    };
  }

  /** Queued for a later group commit (COMMIT_DELAY_MS); `result()` sees it at once. */
  putResult(r: ResultRecord): void {
    if (this.#pendingResults.has(r.requestId)) return; // first one stands (INSERT OR IGNORE for the file)
    this.#pendingResults.set(r.requestId, r);
    this.#resultIds.filter.add(r.requestId);
    this.#scheduleCommit();
  }

  #insertResult(r: ResultRecord): void {
    this.#s.resultInsert!.run(
      r.requestId,
      r.terminalId,
      r.hash,
      r.op,
      r.wallet,
      r.engineId,
      r.status,
      r.code,
      r.amountMinor,
      r.currency,
      r.holdUntilMs,
      Buffer.from(r.result),
      r.timeMs,
    );
  }

  putTicket(ticketId: string, wallet: string, product: string, requestId: string, issuedMs: number): void {
    this.#relaxed(() => this.#s.ticketInsert!.run(ticketId, wallet, product, requestId, issuedMs));
  }

  /**
   * A refund voids its sale's ticket: it claims the ticket's use (`replay`: used already) and, in
   * the same transaction, makes a new version of the announced deny list, so gates deciding
   * offline refuse the ticket too.
   */
  voidTicket(ticketId: string, refundId: string, nowMs: number): Freshness {
    return this.transaction(() => {
      const claimed = this.claimTicketUse(ticketId, refundId, VOID_TERMINAL, VOID_STATION, nowMs);
      if (claimed === 'fresh') this.#blocklistChanged(nowMs);
      return claimed;
    });
  }

  /** Undoes a use claimed by `requestId` (a ticket.use the ledger then refused). */
  releaseTicketUse(ticketId: string, requestId: string): void {
    this.#relaxed(() => this.#s.ticketUseRelease!.run(ticketId, requestId));
  }

  /** Gives a voided ticket back (its refund was declined): the deny list no longer carries it. */
  unvoidTicket(ticketId: string, refundId: string, nowMs: number): void {
    this.transaction(() => {
      if (this.#s.ticketUseRelease!.run(ticketId, refundId).changes > 0) this.#blocklistChanged(nowMs);
    });
  }

  /** Tickets voided since `sinceMs` (older ones are past any ticket's validity), the newest `cap`. */
  voidedTickets(sinceMs: number, cap: number): string[] {
    return (this.#s.ticketVoided!.all(sinceMs, cap) as string[]).sort();
  }

  hasTicket(ticketId: string): boolean {
    return this.#s.ticketGet!.get(ticketId) !== undefined;
  }

  /** First reported use wins; the same request id reporting again is a retry, not a second use. */
  claimTicketUse(ticketId: string, requestId: string, terminalId: string, station: string, usedMs: number): Freshness {
    const seen = this.#s.ticketUseGet!.get(ticketId) as { request_id: string } | undefined;
    if (seen) return seen.request_id === requestId ? 'retry' : 'replay';
    this.#relaxed(() => this.#s.ticketUseInsert!.run(ticketId, requestId, terminalId, station, usedMs));
    return 'fresh';
  }

  /**
   * A gate entry record pays for one exit only. `opened`: the request's gate let the customer out
   * already (a local decision), so a replay is an exit made on the record: it is kept against the
   * fare that claimed it (entryRecordContestedBy).
   */
  claimEntryRecord(recordId: string, requestId: string, opened = false): Freshness {
    const seen = this.#s.entryGet!.get(recordId) as { request_id: string } | undefined;
    if (seen && seen.request_id !== requestId && opened) this.#relaxed(() => this.#s.entryContest!.run(requestId, recordId));
    if (seen) return seen.request_id === requestId ? 'retry' : 'replay';
    this.#relaxed(() => this.#s.entryInsert!.run(recordId, requestId));
    return 'fresh';
  }

  /**
   * The fare `requestId` paid nothing after all (the ledger declined it, or it was refunded): the
   * entry record it claimed pays for an exit again. On disk when it resolves: a later claim's
   * commit moves the restore's starting point past this fare, so a release a power cut took would
   * not be redone.
   */
  async releaseEntryRecordOf(requestId: string): Promise<void> {
    this.#relaxed(() => this.#s.entryRelease!.run(requestId));
    await this.durable();
  }

  /** `requestId`'s exit was made on the entry record another fare claimed (entryRecordContestedBy). */
  contestEntryRecord(recordId: string, requestId: string): void {
    this.#relaxed(() => this.#s.entryContest!.run(requestId, recordId));
  }

  /** The request that claimed an entry record, if one did. */
  entryRecordClaimant(recordId: string): string | undefined {
    return (this.#s.entryGet!.get(recordId) as { request_id: string } | undefined)?.request_id;
  }

  /**
   * The exit that consumed an entry record, as far as the hub knows: the request that claimed it
   * (a fare, a ticket exit) once its stored result approved it. None for a record never claimed, a
   * claim given back (its fare declined or refunded: releaseEntryRecordOf) and a claim whose
   * request is still being decided (an entrance asking then is told "not consumed", as before the
   * exit). An entrance asks this on its "already inside" path (SettlementService `admission.check`).
   */
  entryRecordConsumedBy(recordId: string): string | undefined {
    const claimant = this.entryRecordClaimant(recordId);
    if (claimant === undefined) return undefined;
    return this.result(claimant)?.status === 'approved' ? claimant : undefined;
  }

  /** The locally decided fare that exited on the entry record `requestId` claimed, if one did. */
  entryRecordContestedBy(requestId: string): string | undefined {
    return (this.#s.entryContestedBy!.get(requestId) as { contested_by: string } | undefined)?.contested_by;
  }

  /** Returns true the first time this (request, outcome) receipt is recorded. */
  putReceipt(requestId: string, outcome: string, terminalId: string, nowMs: number): boolean {
    return this.#relaxed(() => this.#s.receiptInsert!.run(requestId, outcome, terminalId, nowMs).changes > 0);
  }

  /** Every outcome a receipt of this request was recorded with. */
  receiptOutcomes(requestId: string): string[] {
    return (this.#s.receiptOutcomes!.all(requestId) as { outcome: string }[]).map((r) => r.outcome);
  }

  // ---------- incidents ----------

  /**
   * Per-request state like a claim: committed at NORMAL (no fsync on the event loop); the caller
   * makes it durable (durable()) before answering, so a terminal whose report was answered never
   * has it lost. False if the id was recorded before.
   */
  putIncident(r: IncidentRecord): boolean {
    return this.#relaxed(() => this.#s.incidentInsert!.run(r.requestId, r.terminalId, r.wallet, r.kind, r.amountMinor, r.currency, r.detail, r.timeMs, r.recordedMs).changes > 0);
  }

  incidentCount(): number {
    return (this.#s.incidentCount!.get() as { n: number }).n;
  }

  /** Drops up to `limit` incidents recorded before `beforeMs`, oldest first. */
  pruneIncidents(beforeMs: number, limit: number): number {
    return this.#relaxed(() => this.#s.incidentPrune!.run(beforeMs, limit).changes);
  }

  /** Newest recorded first; one wallet's, or all (the hub checks the limit: Hub.incidents). */
  incidents(options: { wallet?: string; limit: number }): IncidentRecord[] {
    const { wallet, limit } = options;
    const rows = (wallet !== undefined ? this.#s.incidentListWallet!.all(wallet, limit) : this.#s.incidentList!.all(limit)) as IncidentRow[];
    return rows.map(toIncident);
  }

  // ---------- payouts (seed 001 fig. 11) ----------

  putPayout(p: PayoutRecord): void {
    this.#s.payoutUpsert!.run(p.payoutId, p.merchantId, p.amountMinor, p.currency, p.state, p.reference, p.timeMs);
  }

  payout(payoutId: string): PayoutRecord | undefined {
    const r = this.#s.payoutGet!.get(payoutId) as PayoutRow | undefined;
    return r ? toPayout(r) : undefined;
  }

  payouts(limit = 100): PayoutRecord[] {
    return (this.#s.payoutList!.all(limit) as PayoutRow[]).map(toPayout);
  }
}

interface PayoutRow {
  payout_id: string;
  merchant_id: string;
  amount_minor: number;
  currency: string;
  state: PayoutRecord['state'];
  reference: string | null;
  time_ms: number;
}

function toPayout(r: PayoutRow): PayoutRecord {
  return {
    payoutId: r.payout_id,
    merchantId: r.merchant_id,
    amountMinor: r.amount_minor,
    currency: r.currency,
    state: r.state,
    reference: r.reference,
    timeMs: r.time_ms,
  };
}

interface IncidentRow {
  request_id: string;
  terminal_id: string;
  wallet: string;
  kind: string;
  amount_minor: number;
  currency: string;
  detail: string;
  time_ms: number;
  recorded_ms: number;
}

function toIncident(r: IncidentRow): IncidentRecord {
  return {
    requestId: r.request_id,
    terminalId: r.terminal_id,
    wallet: r.wallet,
    kind: r.kind,
    amountMinor: r.amount_minor,
    currency: r.currency,
    detail: r.detail,
    timeMs: r.time_ms,
    recordedMs: r.recorded_ms,
  };
}
