// The terminal's durable local store: the outbox of settlement requests (online and offline),
// completion receipts, used tickets, the last hub announcements and the presence sequence.
//
// Why SQLite (better-sqlite3) with WAL + synchronous=FULL: every commit fsyncs the WAL before it
// returns; each WAL frame carries a checksum chained over the previous ones, so after a power cut
// a torn last frame (and its transaction) is discarded on open and every earlier commit is kept
// whole. That gives atomic, durable single-record writes and multi-row updates (result + receipt)
// without hand-rolled temp-file/rename/fsync-dir code, plus the queries the risk policy needs.
//
// The request id is written here BEFORE the request is sent and every retry reuses it
// (TigerBeetle's reliable submission; Square's offline duplicate charges came from fresh ids).
import Database from 'better-sqlite3';

export type OutboxState = 'pending' | 'abandoned' | 'done';

export interface OutboxEntry {
  requestId: string;
  /** The signed, encoded settlement.request exactly as first sent: retries send these bytes. */
  envelope: string;
  wallet: string | null;
  amountMinor: number;
  /** Accepted by the terminal without the hub (offline, or a gate's local decision). */
  local: boolean;
  createdMs: number;
  state: OutboxState;
  /** The verified hub result (encoded), once it arrived. */
  result: string | null;
  attempts: number;
  /** The terminal's running time when it was queued (`TerminalStore.uptimeMs`). */
  uptimeMs: number;
}

export interface ReceiptEntry {
  requestId: string;
  envelope: string;
  /** The hub answered it with a verified receipt.ack (a broker's PUBACK is not enough). */
  acknowledged: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  request_id TEXT PRIMARY KEY,
  envelope TEXT NOT NULL,
  wallet TEXT,
  amount_minor INTEGER NOT NULL,
  local INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'abandoned', 'done')),
  result TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  uptime_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (state) WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS outbox_local ON outbox (wallet, created_ms) WHERE local = 1;
-- sent: 1 once the hub acknowledged the receipt (a verified receipt.ack); the name predates the ack.
CREATE TABLE IF NOT EXISTS receipts (
  request_id TEXT PRIMARY KEY,
  envelope TEXT NOT NULL,
  sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS used_tickets (ticket_id TEXT PRIMARY KEY, used_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Vending (MDB "vend request / vend started"): one row per vending request from its queueing to
-- its completion receipt; a POS's online purchase or ticket sale likewise, until its receipt or held ticket. started: 0 = requested (nothing dispensed), 1 = the motor was driven.
-- A row left at start-up is a dispense a power cut interrupted (TerminalRuntime recovery).
CREATE TABLE IF NOT EXISTS vends (request_id TEXT PRIMARY KEY, started INTEGER NOT NULL DEFAULT 0, slot INTEGER, started_ms INTEGER);
-- POS: hub-signed tickets sold here and not yet written to their wallet (the next tap collects them).
-- request_id: the sale, refunded by a failure receipt if the ticket expires here (NULL: held before it was kept).
CREATE TABLE IF NOT EXISTS held_tickets (ticket_id TEXT PRIMARY KEY, wallet TEXT NOT NULL, envelope TEXT NOT NULL, held_ms INTEGER NOT NULL, request_id TEXT);
CREATE INDEX IF NOT EXISTS held_tickets_wallet ON held_tickets (wallet);
`;
/** After the migration below (a store from before `uptime_ms` gets the column first). */
const PERIOD_INDEX = 'CREATE INDEX IF NOT EXISTS outbox_period ON outbox (uptime_ms) WHERE local = 1';

/**
 * The store's migrations, in order: the store's `PRAGMA user_version` is how many have run. Each
 * runs once, in one transaction with its version bump (a power cut leaves it done or not begun).
 * Append only: a migration that shipped is never edited. A store of a newer version (a rolled back
 * terminal) is opened as it is: the tables this version knows are unchanged by later ones.
 */
const MIGRATIONS: readonly { readonly name: string; readonly up: (db: Database.Database) => void }[] = [
  {
    // Stores from before versioned migrations (user_version 0) hold this schema wholly or in part:
    // idempotent, it completes whatever they lack.
    name: 'base schema',
    up: (db) => {
      db.exec(SCHEMA);
      // A store from before the running-time column: its rows count as queued at running time 0,
      // i.e. in the period for the first period of running time after the upgrade (never less).
      const columns = db.prepare('PRAGMA table_info(outbox)').all() as { name: string }[];
      if (!columns.some((c) => c.name === 'uptime_ms')) db.exec('ALTER TABLE outbox ADD COLUMN uptime_ms INTEGER NOT NULL DEFAULT 0');
      const held = db.prepare('PRAGMA table_info(held_tickets)').all() as { name: string }[];
      if (!held.some((c) => c.name === 'request_id')) db.exec('ALTER TABLE held_tickets ADD COLUMN request_id TEXT');
      db.exec(PERIOD_INDEX);
    },
  },
  {
    // Slips made before anything could print them (start-up recovery's "POWER LOST — SALE
    // REVERSED"), kept until printed: `lines` is the slip as a JSON array of strings.
    name: 'slips kept until printed',
    up: (db) => db.exec('CREATE TABLE slips (id INTEGER PRIMARY KEY AUTOINCREMENT, lines TEXT NOT NULL, created_ms INTEGER NOT NULL)'),
  },
  {
    // Vending: failed vends per slot since an operator last reset it (a slot with any is out of
    // order: the vending machine refuses its articles at selection). last_*: the latest failure.
    name: 'vending slot faults',
    up: (db) =>
      db.exec(`CREATE TABLE slot_faults (slot INTEGER PRIMARY KEY, failures INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
        last_reason TEXT NOT NULL, last_request_id TEXT)`),
  },
];

/** The schema version this code writes (`PRAGMA user_version` after `TerminalStore.open`). */
export const STORE_SCHEMA_VERSION = MIGRATIONS.length;

/** Runs the migrations `db` has not had yet (see MIGRATIONS). */
function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      MIGRATIONS[v]!.up(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** A vending slot's failed vends since an operator last reset it. */
export interface SlotFault {
  slot: number;
  failures: number;
  firstMs: number;
  lastMs: number;
  lastReason: string;
  lastRequestId: string | null;
}

/** Most slips kept unprinted (TIGER_STYLE: a bound on everything); the oldest are printed first. */
export const MAX_KEPT_SLIPS = 256;
/** kv key of the running-time counter, saved now and then (`saveUptime`) and at close. */
const UPTIME_KEY = 'uptime.ms';

/** Bound on the queue (TIGER_STYLE): a terminal that cannot forward stops accepting. */
export const MAX_OPEN_OUTBOX = 10_000;

type Row = {
  request_id: string;
  envelope: string;
  wallet: string | null;
  amount_minor: number;
  local: number;
  created_ms: number;
  state: OutboxState;
  result: string | null;
  attempts: number;
  uptime_ms: number;
};

function toEntry(r: Row): OutboxEntry {
  return {
    requestId: r.request_id,
    envelope: r.envelope,
    wallet: r.wallet,
    amountMinor: r.amount_minor,
    local: r.local === 1,
    createdMs: r.created_ms,
    state: r.state,
    result: r.result,
    attempts: r.attempts,
    uptimeMs: r.uptime_ms,
  };
}

/** A vending request not yet closed by its completion receipt. */
export interface VendEntry {
  requestId: string;
  /** The slot driven (null: not started). */
  slot: number | null;
  /** The motor was driven (`markVendStarted`): something may have left the machine. */
  started: boolean;
}

type SlotFaultRow = { slot: number; failures: number; first_ms: number; last_ms: number; last_reason: string; last_request_id: string | null };

function toSlotFault(r: SlotFaultRow): SlotFault {
  return { slot: r.slot, failures: r.failures, firstMs: r.first_ms, lastMs: r.last_ms, lastReason: r.last_reason, lastRequestId: r.last_request_id };
}

export interface TerminalStoreOptions {
  /** A monotonic clock in ms (default `performance.now`); tests pass a fake one. */
  monotonicMs?: () => number;
}

export class TerminalStore {
  private readonly st;
  private readonly monotonicMs: () => number;
  /** Running time saved by earlier runs, and the monotonic reading it continues from. */
  private readonly uptimeBaseMs: number;
  private readonly monotonicStartMs: number;

  private constructor(
    readonly db: Database.Database,
    options: TerminalStoreOptions,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.st = {
      insert: p('INSERT INTO outbox (request_id, envelope, wallet, amount_minor, local, created_ms, state, uptime_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      get: p('SELECT * FROM outbox WHERE request_id = ?'),
      open: p("SELECT * FROM outbox WHERE state <> 'done' ORDER BY created_ms, rowid"),
      oldestOpen: p("SELECT * FROM outbox WHERE state <> 'done' ORDER BY created_ms, rowid LIMIT 1"),
      openCount: p("SELECT count(*) AS n FROM outbox WHERE state <> 'done'"),
      openSends: p("SELECT request_id, attempts FROM outbox WHERE state <> 'done' ORDER BY created_ms, rowid"),
      openEnvelopes: p("SELECT request_id, envelope FROM outbox WHERE request_id IN (SELECT value FROM json_each(?)) AND state <> 'done'"),
      attempts: p('UPDATE outbox SET attempts = attempts + ? WHERE request_id = ?'),
      abandon: p("UPDATE outbox SET state = 'abandoned' WHERE request_id = ? AND state = 'pending'"),
      abandonOnline: p("UPDATE outbox SET state = 'abandoned' WHERE state = 'pending' AND local = 0"),
      done: p("UPDATE outbox SET state = 'done', result = ? WHERE request_id = ? AND state <> 'done'"),
      walletOpen: p("SELECT coalesce(sum(amount_minor), 0) AS s FROM outbox WHERE local = 1 AND wallet = ? AND state <> 'done'"),
      walletSince: p("SELECT coalesce(sum(amount_minor), 0) AS s FROM outbox WHERE local = 1 AND wallet = ? AND (state <> 'done' OR created_ms > ?)"),
      period: p('SELECT coalesce(sum(amount_minor), 0) AS s FROM outbox WHERE local = 1 AND uptime_ms > ?'),
      addReceipt: p('INSERT OR IGNORE INTO receipts (request_id, envelope) VALUES (?, ?)'),
      pendingReceipts: p('SELECT request_id, envelope, sent FROM receipts WHERE sent = 0 ORDER BY rowid'),
      receiptAcknowledged: p('UPDATE receipts SET sent = 1 WHERE request_id = ?'),
      getReceipt: p('SELECT request_id, envelope, sent FROM receipts WHERE request_id = ?'),
      useTicket: p('INSERT OR IGNORE INTO used_tickets (ticket_id, used_ms) VALUES (?, ?)'),
      ticketUsed: p('SELECT 1 FROM used_tickets WHERE ticket_id = ?'),
      pruneUsed: p("DELETE FROM used_tickets WHERE ticket_id >= ? AND ticket_id < ? AND used_ms < ?"),
      kvGet: p('SELECT value FROM kv WHERE key = ?'),
      abandoned: p("SELECT 1 FROM outbox WHERE wallet = ? AND state = 'abandoned' LIMIT 1"),
      kvDelete: p('DELETE FROM kv WHERE key = ?'),
      kvSet: p('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      vendInsert: p('INSERT OR IGNORE INTO vends (request_id) VALUES (?)'),
      vendStart: p('INSERT INTO vends (request_id, started, slot, started_ms) VALUES (?, 1, ?, ?) ON CONFLICT (request_id) DO UPDATE SET started = 1, slot = excluded.slot, started_ms = excluded.started_ms'),
      vendClear: p('DELETE FROM vends WHERE request_id = ?'),
      vendsOpen: p('SELECT request_id, slot, started FROM vends ORDER BY rowid'),
      holdTicket: p('INSERT OR IGNORE INTO held_tickets (ticket_id, wallet, envelope, held_ms, request_id) VALUES (?, ?, ?, ?, ?)'),
      heldTickets: p('SELECT envelope FROM held_tickets WHERE wallet = ? ORDER BY rowid LIMIT 16'),
      releaseTicket: p('DELETE FROM held_tickets WHERE ticket_id = ?'),
      allHeldTickets: p('SELECT ticket_id, envelope, request_id FROM held_tickets ORDER BY rowid LIMIT ?'),
      // Oldest first (rowid is insertion order); the scan stops after `max` matches, and reads the
      // whole table (hourly) only when nothing is old enough yet.
      settledBefore: p(
        "SELECT request_id FROM outbox o WHERE state = 'done' AND created_ms < ? AND uptime_ms < ? AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.request_id = o.request_id AND r.sent = 0) ORDER BY rowid LIMIT ?",
      ),
      deleteRequest: p('DELETE FROM outbox WHERE request_id = ?'),
      deleteReceipt: p('DELETE FROM receipts WHERE request_id = ?'),
      pruneKv: p("DELETE FROM kv WHERE key >= ? AND key < ? AND json_extract(value, '$.timeMs') < ?"),
      kvBefore: p("SELECT key, value FROM kv WHERE key >= ? AND key < ? AND json_extract(value, '$.timeMs') < ? ORDER BY key"),
      slipAdd: p('INSERT INTO slips (lines, created_ms) VALUES (?, ?)'),
      slipsKept: p('SELECT id, lines, created_ms FROM slips ORDER BY id LIMIT ?'),
      slipCount: p('SELECT count(*) AS n FROM slips'),
      slipDropOldest: p('DELETE FROM slips WHERE id = (SELECT min(id) FROM slips)'),
      slipPrinted: p('DELETE FROM slips WHERE id = ?'),
      slotFail: p(
        'INSERT INTO slot_faults (slot, failures, first_ms, last_ms, last_reason, last_request_id) VALUES (?, 1, ?, ?, ?, ?) ' +
          'ON CONFLICT (slot) DO UPDATE SET failures = failures + 1, last_ms = excluded.last_ms, last_reason = excluded.last_reason, last_request_id = excluded.last_request_id RETURNING failures',
      ),
      slotFault: p('SELECT * FROM slot_faults WHERE slot = ?'),
      slotFaults: p('SELECT * FROM slot_faults ORDER BY slot'),
      slotReset: p('DELETE FROM slot_faults WHERE slot = ? RETURNING failures'),
    };
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    const maxRow = (db.prepare('SELECT coalesce(max(uptime_ms), 0) AS m FROM outbox').get() as { m: number }).m;
    this.uptimeBaseMs = Math.max(Number(this.getKv(UPTIME_KEY) ?? '0') || 0, maxRow);
    this.monotonicStartMs = this.monotonicMs();
  }

  static open(path: string, options: TerminalStoreOptions = {}): TerminalStore {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    // FULL: the WAL is fsync'd at every commit, so a returned write survives a power cut.
    db.pragma('synchronous = FULL');
    migrate(db);
    return new TerminalStore(db, options);
  }

  /**
   * The terminal's running time: a monotonic clock carried on across restarts (saved with every
   * queued request, by `saveUptime` and at close). Power-off time does not count — a Pi without
   * an RTC cannot know it — and no wall-clock step (NTP correcting a stale boot clock) moves it.
   */
  uptimeMs(): number {
    return this.uptimeBaseMs + Math.max(0, Math.floor(this.monotonicMs() - this.monotonicStartMs));
  }

  /** Persist the running-time counter (the runtime calls this about once a minute). */
  saveUptime(): void {
    if (this.db.open) this.setKv(UPTIME_KEY, String(this.uptimeMs()));
  }

  /**
   * Persist a signed request before it is sent. Throws on a reused request id (programmer error).
   * `vend`: a vending request, recorded (same transaction) as an open vend until its receipt.
   */
  enqueue(e: { requestId: string; envelope: string; wallet: string | null; amountMinor: number; local: boolean; createdMs: number; vend?: boolean }): void {
    const open = (this.st.openCount.get() as { n: number }).n;
    if (open >= MAX_OPEN_OUTBOX) throw new RangeError(`outbox full (${open} open requests)`);
    this.db.transaction(() => {
      this.st.insert.run(e.requestId, e.envelope, e.wallet, e.amountMinor, e.local ? 1 : 0, e.createdMs, 'pending', this.uptimeMs());
      if (e.vend === true) this.st.vendInsert.run(e.requestId);
    })();
  }

  /** Durably (fsync'd) BEFORE the motor is driven: a power cut from here on is a failed dispense. */
  markVendStarted(requestId: string, slot: number, nowMs: number): void {
    this.st.vendStart.run(requestId, slot, nowMs);
  }

  /** The vend needs no receipt (the hub declined or refused its request). */
  clearVend(requestId: string): void {
    this.st.vendClear.run(requestId);
  }

  /** Vending requests without their completion receipt yet (what start-up recovery looks at). */
  openVends(): VendEntry[] {
    return (this.st.vendsOpen.all() as { request_id: string; slot: number | null; started: number }[]).map((r) => ({ requestId: r.request_id, slot: r.slot, started: r.started === 1 }));
  }

  get(requestId: string): OutboxEntry | undefined {
    const r = this.st.get.get(requestId) as Row | undefined;
    return r ? toEntry(r) : undefined;
  }

  /** Requests without a hub result yet, oldest first: what a reconnect forwards. */
  open(): OutboxEntry[] {
    return (this.st.open.all() as Row[]).map(toEntry);
  }

  /** The open request that has waited longest, if any. */
  oldestOpen(): OutboxEntry | undefined {
    const r = this.st.oldestOpen.get() as Row | undefined;
    return r ? toEntry(r) : undefined;
  }

  openCount(): number {
    return (this.st.openCount.get() as { n: number }).n;
  }

  /**
   * The open requests' ids and send counts, oldest first, without their envelopes: what the hub
   * client's re-send schedule is loaded from (reading every envelope each retry tick froze the
   * terminal for half a second with a full outbox).
   */
  openSends(): { requestId: string; attempts: number }[] {
    return (this.st.openSends.all() as { request_id: string; attempts: number }[]).map((r) => ({ requestId: r.request_id, attempts: r.attempts }));
  }

  /** The envelopes of those of `requestIds` still open (requestId → envelope), read in one query. */
  openEnvelopes(requestIds: readonly string[]): Map<string, string> {
    const rows = this.st.openEnvelopes.all(JSON.stringify(requestIds)) as { request_id: string; envelope: string }[];
    return new Map(rows.map((r) => [r.request_id, r.envelope]));
  }

  /**
   * Adds sends to requests' attempt counts (requestId → sends), in one transaction: one fsync for
   * a whole retry tick, not one per send. A store closed already (the terminal shutting down)
   * keeps its counts: they only pace re-sends and raise the "no answer" alert.
   */
  countAttempts(sends: ReadonlyMap<string, number>): void {
    if (sends.size === 0 || !this.db.open) return;
    this.db.transaction(() => {
      for (const [requestId, n] of sends) this.st.attempts.run(n, requestId);
    })();
  }

  abandon(requestId: string): void {
    this.st.abandon.run(requestId);
  }

  /** Every online request still waiting for its result is given up on (at a restart); how many. */
  abandonOnline(): number {
    return this.st.abandonOnline.run().changes;
  }

  /** Records the hub's verified result; false when the request was already done (duplicate reply). */
  complete(requestId: string, resultEncoded: string, receipt?: { envelope: string }): boolean {
    return this.db.transaction(() => {
      const changed = this.st.done.run(resultEncoded, requestId).changes === 1;
      if (changed && receipt) {
        this.st.addReceipt.run(requestId, receipt.envelope);
        this.st.vendClear.run(requestId);
      }
      return changed;
    })();
  }

  /** Is there a request for this wallet the customer gave up on that has no hub result yet? */
  hasAbandoned(wallet: string): boolean {
    return this.st.abandoned.get(wallet) !== undefined;
  }

  walletLocalMinor(wallet: string, sinceMs?: number): number {
    const r = (sinceMs === undefined ? this.st.walletOpen.get(wallet) : this.st.walletSince.get(wallet, sinceMs)) as { s: number };
    return r.s;
  }

  /**
   * What this terminal accepted locally (offline, or a gate's local decision) in the last
   * `periodMs` of its running time (`uptimeMs`), not of the wall clock: rows dated by a stale boot
   * clock (a Pi has no RTC) look a period old once NTP steps the clock forward, and would free the
   * whole budget again. Running time never runs ahead of real time, so whatever the wall clock
   * does the budget renews at most once per real period (later, by the time the terminal was off).
   */
  terminalPeriodMinor(periodMs: number): number {
    return (this.st.period.get(this.uptimeMs() - periodMs) as { s: number }).s;
  }

  /** Stores a completion receipt; it closes the request's vend (same transaction). */
  addReceipt(requestId: string, envelope: string): void {
    this.db.transaction(() => {
      this.st.addReceipt.run(requestId, envelope);
      this.st.vendClear.run(requestId);
    })();
  }

  /**
   * Whether a receipt of this request can go to the hub: once the hub has settled the request (a
   * failed offline dispense must follow its sale, or there is nothing to refund), or when the
   * request is no longer kept (pruned: settled long ago).
   */
  receiptDeliverable(requestId: string): boolean {
    const entry = this.get(requestId);
    return entry === undefined || entry.state === 'done';
  }

  pendingReceipts(): ReceiptEntry[] {
    return (this.st.pendingReceipts.all() as { request_id: string; envelope: string; sent: number }[]).map((r) => ({ requestId: r.request_id, envelope: r.envelope, acknowledged: r.sent === 1 }));
  }

  getReceipt(requestId: string): ReceiptEntry | undefined {
    const r = this.st.getReceipt.get(requestId) as { request_id: string; envelope: string; sent: number } | undefined;
    return r ? { requestId: r.request_id, envelope: r.envelope, acknowledged: r.sent === 1 } : undefined;
  }

  /** The hub acknowledged the receipt: it is no longer re-sent. */
  markReceiptAcknowledged(requestId: string): void {
    // A receipt whose request was pruned already (a paid exit's, hours later): nothing would prune it.
    if (this.get(requestId) === undefined) this.st.deleteReceipt.run(requestId);
    else this.st.receiptAcknowledged.run(requestId);
  }

  /** POS: a hub-signed ticket sold here (by request `requestId`), kept until it is on its wallet (`releaseTicket`). */
  holdTicket(ticketId: string, wallet: string, envelope: string, nowMs: number, requestId?: string): void {
    this.db.transaction(() => {
      this.st.holdTicket.run(ticketId, wallet, envelope, nowMs, requestId ?? null);
      // A POS ticket sale's outcome is recorded once its ticket is kept (its open sale ends).
      if (requestId !== undefined) this.st.vendClear.run(requestId);
    })();
  }

  /** The encoded tickets held for a wallet (at most 16, oldest first). */
  heldTickets(wallet: string): string[] {
    return (this.st.heldTickets.all(wallet) as { envelope: string }[]).map((r) => r.envelope);
  }

  /** The ticket is on its wallet now. */
  releaseTicket(ticketId: string): void {
    this.st.releaseTicket.run(ticketId);
  }

  /** Every held ticket (at most `limit`, oldest first), for pruning the expired ones; `requestId`: its sale, if kept. */
  allHeldTickets(limit: number): { ticketId: string; envelope: string; requestId: string | null }[] {
    return (this.st.allHeldTickets.all(limit) as { ticket_id: string; envelope: string; request_id: string | null }[]).map((r) => ({ ticketId: r.ticket_id, envelope: r.envelope, requestId: r.request_id }));
  }

  /**
   * Drops settled history: requests answered (`done`) that were created before `beforeMs` (wall
   * clock) and recorded before `beforeUptimeMs` (running time), with their receipts — only once
   * the hub acknowledged the receipt, which is re-sent until then. At most `max` a call, in one
   * transaction; how many went.
   */
  pruneSettled(beforeMs: number, beforeUptimeMs: number, max: number): number {
    return this.db.transaction(() => {
      const rows = this.st.settledBefore.all(beforeMs, beforeUptimeMs, max) as { request_id: string }[];
      for (const r of rows) {
        this.st.deleteReceipt.run(r.request_id);
        this.st.deleteRequest.run(r.request_id);
      }
      return rows.length;
    })();
  }

  /** Drops kv entries under `prefix` whose JSON value has a `timeMs` before `beforeMs`; how many. */
  pruneKv(prefix: string, beforeMs: number): number {
    return this.st.pruneKv.run(prefix, `${prefix}\uffff`, beforeMs).changes;
  }

  /** The kv entries under `prefix` whose JSON value has a `timeMs` before `beforeMs` (what pruneKv would drop). */
  kvBefore(prefix: string, beforeMs: number): { key: string; value: string }[] {
    return this.st.kvBefore.all(prefix, `${prefix}\uffff`, beforeMs) as { key: string; value: string }[];
  }

  /** Drops used ids under `prefix` (e.g. `admission:`) marked before `beforeMs`; how many. */
  pruneUsed(prefix: string, beforeMs: number): number {
    // A range on the key (the primary key's index), not LIKE: ids are [0-9a-f:] after the prefix.
    return this.st.pruneUsed.run(prefix, `${prefix}\uffff`, beforeMs).changes;
  }

  markTicketUsed(ticketId: string, nowMs: number): void {
    this.st.useTicket.run(ticketId, nowMs);
  }

  ticketUsed(ticketId: string): boolean {
    return this.st.ticketUsed.get(ticketId) !== undefined;
  }

  /**
   * Keeps a slip until it is printed (`slipPrinted`): one made when nothing could print it yet, or
   * handed to a printer that has not printed it yet. Returns its id.
   * At most MAX_KEPT_SLIPS: beyond, the oldest goes (its lines are in the log too).
   */
  keepSlip(lines: readonly string[], nowMs: number): number {
    return this.db.transaction(() => {
      if ((this.st.slipCount.get() as { n: number }).n >= MAX_KEPT_SLIPS) this.st.slipDropOldest.run();
      return Number(this.st.slipAdd.run(JSON.stringify(lines), nowMs).lastInsertRowid);
    })();
  }

  /** The slips kept unprinted, oldest first. */
  keptSlips(): { id: number; lines: string[]; createdMs: number }[] {
    return (this.st.slipsKept.all(MAX_KEPT_SLIPS) as { id: number; lines: string; created_ms: number }[]).map((r) => ({ id: r.id, lines: JSON.parse(r.lines) as string[], createdMs: r.created_ms }));
  }

  slipPrinted(id: number): void {
    this.st.slipPrinted.run(id);
  }

  /** Vending: a vend on `slot` failed (fsync'd); the slot's failures since its last reset. */
  recordSlotFailure(slot: number, nowMs: number, reason: string, requestId: string | null): number {
    return (this.st.slotFail.get(slot, nowMs, nowMs, reason.slice(0, 200), requestId) as { failures: number }).failures;
  }

  /** The slot's failed vends since an operator last reset it (0: in service). */
  slotFailures(slot: number): number {
    return (this.st.slotFault.get(slot) as SlotFaultRow | undefined)?.failures ?? 0;
  }

  /** Every slot with failed vends, by slot number. */
  slotFaults(): SlotFault[] {
    return (this.st.slotFaults.all() as SlotFaultRow[]).map(toSlotFault);
  }

  /** An operator put the slot back in service; the failures it had (0: it had none). */
  resetSlot(slot: number): number {
    return (this.st.slotReset.get(slot) as { failures: number } | undefined)?.failures ?? 0;
  }

  /** Runs `fn`'s writes as one transaction: all of them survive a crash, or none. */
  atomically<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  getKv(key: string): string | undefined {
    return (this.st.kvGet.get(key) as { value: string } | undefined)?.value;
  }

  setKv(key: string, value: string): void {
    this.st.kvSet.run(key, value);
  }

  deleteKv(key: string): void {
    this.st.kvDelete.run(key);
  }

  /** Presence sequence: grows across connections and restarts (Sparkplug B bdSeq). */
  nextPresenceSeq(nowMs: number): number {
    return this.db.transaction(() => {
      const last = Number(this.getKv('presence.seq') ?? '0');
      const next = Math.max(last + 1, nowMs);
      this.setKv('presence.seq', String(next));
      return next;
    })();
  }

  close(): void {
    this.saveUptime();
    if (this.db.open) this.db.close();
  }
}
