/**
 * createHub: opens the registry, the ledger (engine) and the rules from one data folder and wires
 * the settlement service, announcements, holds release and the operator actions the CLI, the
 * dashboard, the MQTT layer and the simulators call. Transport-free: no MQTT in here.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import {
  Name,
  PublicKeyHex,
  generateKeyPair,
  issueTerminalCertificate,
  issueWalletLicense,
  newRequestId,
  toHex,
  type Envelope,
  type KeyPair,
} from '../../protocol/index.ts';
import { TransferFileClearing, type ClearingAdapter } from '../clearing/clearing-adapter.ts';
import { PayoutDesk, payoutRetryOptions, type PayoutOutcome, type PayoutRetryOptions, type RetriedPayout } from '../clearing/payouts.ts';
import { isMerchantId, isRequestId } from '../ledger/command.ts';
import { Engine, type EngineOptions } from '../ledger/engine.ts';
import { SqliteLedgerStore, type SqliteStoreOptions } from '../ledger/sqlite-store.ts';
import { verifyLedger, type VerifyReport } from '../ledger/verify.ts';
import type { Account, HistoryItem, HoldInfo, Outcome, SettlementSummary } from '../ledger/types.ts';
import { loadOrCreateEd25519Key } from '../registry/keys.ts';
import { HubKeyring, nextKeyEdge, RotationError, type HubKeyWindow, type RotationPlan } from '../registry/hub-keyring.ts';
import { voidTicketOf } from './ticket-void.ts';
import { Registry, type IncidentRecord, type TerminalDirectory, type TerminalInfo, type TerminalKindT } from '../registry/registry.ts';
import { parseCatalogFile, type CatalogVersion } from '../rules/catalog.ts';
import { parseFareTableFile, type FareTableVersion } from '../rules/fare-tables.ts';
import { parseTicketProductsFile } from '../rules/tickets.ts';
import { inlineVerifier, type SignatureVerifier } from '../verify/verifier.ts';
import { Announcer, type Announcement } from './announcements.ts';
import type { CardAuthorizer } from './card-authorizer.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { engineRequestId, ledgerDecision, refundAttemptId } from './engine-ids.ts';
import { BPS_DENOMINATOR } from '../ledger/split.ts';
import { InputError, OperationRefused } from './input-error.ts';
import { restoreClaimsFromLedger } from './claim-memo.ts';
import { restoreOverspendBlocklist } from './overspend-blocklist.ts';
import { REPLAY_STATE_RETENTION_MS, SettlementService, type ReceiptOutcome, type SettlementEvent } from './settlement-service.ts';

export interface CreateHubOptions {
  readonly dataDir: string;
  /** Wall clock in ms (tests move it to cross cancellation windows). */
  readonly clock?: () => number;
  readonly logger?: Logger;
  /**
   * The hub's one settlement currency: a new ledger's (default EUR). Once the ledger holds one,
   * this must name it or be left out (then the ledger's is used): a mismatch is an InputError.
   */
  readonly currency?: string;
  /** Signature checks; the MQTT layer plugs a worker-thread pool here. Default inline. */
  readonly verifier?: SignatureVerifier;
  /**
   * The acquirer card top-ups go through. Default: none, and card top-ups are refused
   * (NOT_PERMITTED): no simulator stands in for a real one unasked (tests pass CardAuthorizerSimulator).
   */
  readonly cardAuthorizer?: CardAuthorizer;
  /** Default: transfer instructions in `<dataDir>/payout-instructions/` (TransferFileClearing). */
  readonly clearing?: ClearingAdapter;
  /**
   * Payouts the clearing did not take are sent again at start and on this timer (hub/clearing
   * README); `intervalMs: 0` turns the timer and the start-up send off (the CLI on a stopped hub).
   */
  readonly payoutRetry?: PayoutRetryOptions;
  /** How often due holds are released (0 = never by timer; call releaseDueHolds()). Default 1000. */
  readonly holdReleaseIntervalMs?: number;
  readonly engine?: Omit<EngineOptions, 'clock'>;
  /** Ledger durability (hub/ledger README): 'full' (default, fsync per group commit) or 'pipelined'. */
  readonly ledgerDurability?: 'full' | 'pipelined';
  /** Further ledger store options (hub/ledger README), e.g. its writer thread; ledgerDurability wins. */
  readonly ledgerStore?: Omit<SqliteStoreOptions, 'durability' | 'readonly'>;
  readonly maxSkewMs?: number;
}

export interface EnrollTerminalInput {
  readonly terminalId: string;
  readonly kind: TerminalKindT;
  readonly merchantId: string;
  /** The terminal's own key (hex). Absent: the hub generates one and returns its secret (simulators). */
  readonly publicKey?: string;
  readonly validityMs?: number;
  /** A sub-merchant of a mall (seed 003 claim 7). */
  readonly parentMerchantId?: string;
  readonly shareBps?: number;
}

export interface EnrolledTerminal {
  readonly certificate: Envelope<'terminal.certificate'>;
  /** Only when the hub generated the key. */
  readonly keyPair?: KeyPair;
  /** Merchant accounts this enrollment opened (the merchant, a new parent), so a typo shows. */
  readonly openedMerchants: readonly string[];
}

export interface RegisterWalletInput {
  /** The wallet's key (hex). Absent: generated and returned (simulated wallets). */
  readonly publicKey?: string;
  /** Real identity data: stays in the issuer's table (seed 002). */
  readonly identity?: Record<string, unknown>;
  readonly ageOver?: number;
  readonly groups?: readonly string[];
  readonly offlineLimitMinor?: number;
  readonly validityMs?: number;
}

/** What a reissued license changes; anything left out is kept from the license in force. */
export type ReissueLicenseInput = Pick<RegisterWalletInput, 'ageOver' | 'groups' | 'offlineLimitMinor' | 'validityMs'>;

export interface RegisteredWallet {
  readonly license: Envelope<'wallet.license'>;
  readonly keyPair?: KeyPair;
}

export interface HubStatus {
  readonly hubKey: string;
  readonly issuerKey: string;
  readonly currency: string;
  readonly timeMs: number;
  readonly recentSettlements: SettlementSummary[];
  readonly recentEvents: SettlementEvent[];
  readonly pendingHolds: HoldInfo[];
  readonly flaggedAccounts: Account[];
  readonly blocklist: Array<{ wallet: string; reason: string }>;
  readonly blocklistVersion: number;
  readonly terminals: Array<TerminalInfo & { terminalId: string }>;
  readonly verify: VerifyReport | null;
}

const DAY_MS = 24 * 3600_000;
const PRUNED_PER_TICK = 2000;
/** Incidents are the operator's record of fares left open: kept a year and a month. */
export const INCIDENT_RETENTION_MS = 400 * 24 * 3600_000;
const MAX_EVENTS = 100;

function assertName(field: string, value: string): void {
  if (!Name.safeParse(value).success) throw new InputError(field, 'expected 1..64 chars of [A-Za-z0-9._-]');
}

function assertWallet(field: string, value: string): void {
  if (!PublicKeyHex.safeParse(value).success) throw new InputError(field, 'expected a wallet public key: 64 lowercase hex chars');
}

/** Largest operator (cash) top-up in one command: 10,000.00 in a two-decimal currency. */
export const MAX_OPERATOR_TOPUP_MINOR = 1_000_000;

function assertAmount(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw new InputError(field, 'expected a positive integer number of minor units');
}

export class Hub implements TerminalDirectory {
  readonly registry: Registry;
  readonly engine: Engine;
  readonly service: SettlementService;
  readonly announcer: Announcer;
  readonly cardAuthorizer: CardAuthorizer | undefined;
  readonly clearing: ClearingAdapter;
  readonly currency: string;
  /** The refund of each sale in progress (refund()). */
  readonly #refunding = new Map<string, Promise<Outcome>>();
  /** The registration of each wallet key in progress (registerWallet()). */
  readonly #registering = new Map<string, Promise<RegisteredWallet>>();
  readonly clock: () => number;
  readonly logger: Logger;
  readonly #keyring: HubKeyring;
  #keyTimer: NodeJS.Timeout | undefined;
  readonly #issuerKey: KeyPair;
  readonly #verifier: SignatureVerifier;
  readonly #events: SettlementEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** When each failing periodic task was last logged (releaseDueHolds). */
  readonly #taskFailedMs = new Map<string, number>();
  readonly #payouts: PayoutDesk;
  readonly #lock: { release(): void };
  #closed = false;

  constructor(parts: {
    registry: Registry;
    engine: Engine;
    keyring: HubKeyring;
    issuerKey: KeyPair;
    verifier: SignatureVerifier;
    cardAuthorizer: CardAuthorizer | undefined;
    clearing: ClearingAdapter;
    currency: string;
    clock: () => number;
    logger: Logger;
    maxSkewMs?: number;
    holdReleaseIntervalMs: number;
    payoutRetry?: PayoutRetryOptions;
    lock: { release(): void };
  }) {
    this.#lock = parts.lock;
    this.registry = parts.registry;
    this.engine = parts.engine;
    this.#keyring = parts.keyring;
    this.#issuerKey = parts.issuerKey;
    this.#verifier = parts.verifier;
    this.cardAuthorizer = parts.cardAuthorizer;
    this.clearing = parts.clearing;
    this.currency = parts.currency;
    this.clock = parts.clock;
    this.logger = parts.logger;
    const issuerKeys = [toHex(parts.issuerKey.publicKey)];
    this.service = new SettlementService({
      registry: parts.registry,
      engine: parts.engine,
      hubKeys: parts.keyring,
      issuerKeys,
      verifier: parts.verifier,
      ...(parts.cardAuthorizer ? { cardAuthorizer: parts.cardAuthorizer } : {}),
      clock: parts.clock,
      currency: parts.currency,
      logger: parts.logger,
      ...(parts.maxSkewMs !== undefined ? { maxSkewMs: parts.maxSkewMs } : {}),
    });
    this.announcer = new Announcer(parts.registry, parts.keyring, issuerKeys, parts.clock, parts.logger);
    this.#payouts = new PayoutDesk(
      { engine: parts.engine, registry: parts.registry, clearing: parts.clearing, clock: parts.clock, currency: parts.currency, logger: parts.logger },
      parts.payoutRetry,
    );
    this.#armKeyTimer();
    this.service.onBlocklistChange(() => this.announcer.refresh());
    this.service.onSettlement((e) => {
      this.#events.push(e);
      if (this.#events.length > MAX_EVENTS) this.#events.shift();
    });
    if (parts.holdReleaseIntervalMs > 0) {
      this.#timer = setInterval(() => {
        this.releaseDueHolds().catch((err: unknown) => this.logger.error({ err }, 'hold release failed'));
      }, parts.holdReleaseIntervalMs);
      this.#timer.unref();
    }
  }

  /** The key signing results now. */
  get hubPublicKey(): string {
    return toHex(this.#keyring.signingKey(this.clock()).publicKey);
  }

  /** The key a newly provisioned terminal pins: it signs the keys announcement (hub-keyring.ts). */
  get trustAnchorKey(): string {
    return toHex(this.#keyring.anchorKey(this.clock()).publicKey);
  }

  hubKeys(): HubKeyWindow[] {
    return this.#keyring.keys().map(({ publicKey, notBefore, notAfter }) => ({ publicKey, notBefore, notAfter }));
  }

  /**
   * Adds the next signing key (CLI `rotate-hub-key`). It is announced at once and signs from
   * `activateInMs` on; the current key stays trusted for `retireAfterMs` after that (or is dropped
   * at once when `compromised`).
   */
  rotateHubKey(plan: RotationPlan): HubKeyWindow {
    let next: HubKeyWindow;
    try {
      next = this.#keyring.rotate(this.clock(), plan);
    } catch (err) {
      if (err instanceof RotationError) throw new OperationRefused(err.code, err.message);
      throw err;
    }
    const { publicKey, notBefore, notAfter } = next;
    this.logger.info({ hubKey: publicKey, notBefore }, 'hub key rotation planned');
    this.refreshKeys();
    return { publicKey, notBefore, notAfter };
  }

  /**
   * Re-announces what a window edge changed (which key signs the announcements, which keys are
   * listed). Results need no switch: the service picks the signing key per result.
   */
  refreshKeys(): void {
    // One reading of the clock for both: read twice, an edge falling in between was missed.
    const now = this.clock();
    this.announcer.refresh(now);
    this.#armKeyTimer(now);
  }

  /** A timer for the ring's next window edge (re-armed hourly at most, so a long wait stays exact). */
  #armKeyTimer(now = this.clock()): void {
    if (this.#keyTimer) clearTimeout(this.#keyTimer);
    this.#keyTimer = undefined;
    if (this.#closed) return;
    const edge = nextKeyEdge(this.#keyring.keys(), now);
    if (edge === undefined) return;
    // A timer may fire a millisecond early: the refresh then finds the edge still ahead and re-arms.
    this.#keyTimer = setTimeout(() => {
      try {
        this.refreshKeys();
      } catch (err) {
        // A failed re-announcement must not take the hub down; the next edge (or restart) retries.
        this.logger.error({ err }, 'hub key refresh failed');
        this.#armKeyTimer();
      }
    }, Math.min(edge - now, 3600_000));
    this.#keyTimer.unref();
  }

  get issuerPublicKey(): string {
    return toHex(this.#issuerKey.publicKey);
  }

  // ---------- what the MQTT layer calls ----------

  handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    return this.service.handleRequest(terminalId, payload);
  }

  handleReceipt(terminalId: string, payload: Uint8Array): Promise<ReceiptOutcome> {
    return this.service.handleReceipt(terminalId, payload);
  }

  answerReceipt(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    return this.service.answerReceipt(terminalId, payload);
  }

  lookupTerminal(terminalId: string): TerminalInfo | undefined {
    return this.registry.lookupTerminal(terminalId);
  }

  listTerminals(): Array<TerminalInfo & { terminalId: string }> {
    return this.registry.listTerminals();
  }

  announcements(): Announcement[] {
    return this.announcer.all();
  }

  onAnnouncement(cb: (a: Announcement) => void): () => void {
    return this.announcer.onAnnouncement(cb);
  }

  onSettlement(cb: (e: SettlementEvent) => void): () => void {
    return this.service.onSettlement(cb);
  }

  // ---------- enrollment and registration (seed 001 CA, seed 002 issuer) ----------

  async enrollTerminal(input: EnrollTerminalInput): Promise<EnrolledTerminal> {
    assertName('terminalId', input.terminalId);
    if (!['vending', 'gate', 'pos'].includes(input.kind)) throw new InputError('kind', 'expected vending, gate or pos');
    if (!isMerchantId(input.merchantId)) throw new InputError('merchantId', 'expected 1..64 chars of [a-z0-9._:-], starting with a letter or digit');
    if (input.publicKey !== undefined && !PublicKeyHex.safeParse(input.publicKey).success) throw new InputError('publicKey', 'expected 64 lowercase hex chars');
    if (input.parentMerchantId !== undefined && !isMerchantId(input.parentMerchantId)) throw new InputError('parentMerchantId', 'invalid merchant id');
    const validityMs = input.validityMs ?? 365 * DAY_MS;
    checkValidityMs(validityMs);
    if (this.registry.terminal(input.terminalId)) throw new InputError('terminalId', `${input.terminalId} is already enrolled`);
    // One key, one terminal: a revoked (stolen) kiosk's key enrolled again under a new id would work again.
    const holder = input.publicKey === undefined ? undefined : this.registry.terminals().find((t) => t.publicKey === input.publicKey);
    if (holder) throw new InputError('publicKey', `terminal ${holder.terminalId}${holder.revoked ? ' (revoked)' : ''} already holds this key: each terminal needs a key of its own`);
    const opened = await this.#checkMerchants(input);
    const keyPair = input.publicKey === undefined ? generateKeyPair() : undefined;
    const publicKey = input.publicKey ?? toHex((keyPair as KeyPair).publicKey);
    const now = this.clock();
    // A merchant that exists keeps its split (checked above): only new accounts are opened.
    if (input.parentMerchantId !== undefined && opened.includes(input.parentMerchantId)) await this.engine.openMerchant(input.parentMerchantId, { currency: this.currency });
    if (opened.includes(input.merchantId)) {
      await this.engine.openMerchant(input.merchantId, {
        currency: this.currency,
        ...(input.parentMerchantId !== undefined ? { parentId: input.parentMerchantId, shareBps: input.shareBps ?? 0 } : {}),
      });
    }
    const certificate = this.#certificate({ terminalId: input.terminalId, kind: input.kind, merchantId: input.merchantId, publicKey }, now, validityMs);
    this.registry.insertTerminal(certificate, now);
    // Exit gates learn a new gate's key from the keys announcement (admission records).
    if (input.kind === 'gate') this.announcer.refresh();
    return { certificate, ...(keyPair ? { keyPair } : {}), openedMerchants: opened };
  }

  /**
   * Everything the ledger would refuse about the merchant and its parent, checked before anything
   * is written (a refused enrollment opens no account); returns the merchant ids it will open.
   */
  async #checkMerchants(input: EnrollTerminalInput): Promise<string[]> {
    const parentId = input.parentMerchantId;
    const shareBps = input.shareBps ?? 0;
    if (!Number.isSafeInteger(shareBps) || shareBps < 0 || shareBps > BPS_DENOMINATOR) throw new InputError('shareBps', `expected an integer from 0 to ${BPS_DENOMINATOR} (basis points)`);
    if (shareBps > 0 && parentId === undefined) throw new InputError('shareBps', 'a share needs a parent merchant');
    if (parentId === input.merchantId) throw new InputError('parentMerchantId', 'a merchant cannot be its own parent');
    const opened: string[] = [];
    const existing = async (field: string, id: string) => {
      const a = await this.engine.getAccount(id);
      if (a === null) opened.push(id);
      else if (a.kind !== 'merchant' || a.currency !== this.currency) throw new InputError(field, `${id} exists as a ${a.currency} ${a.kind}, not a ${this.currency} merchant`);
      return a;
    };
    const parent = parentId === undefined ? null : await existing('parentMerchantId', parentId);
    if (parent !== null && parent.parentNum !== null) throw new InputError('parentMerchantId', `${parentId} is itself a sub-merchant (one level only)`);
    const merchant = await existing('merchantId', input.merchantId);
    // Another till for an existing merchant: its split stays; --parent/--share-bps may repeat it or be left out.
    if (merchant !== null && parentId !== undefined && (parent === null || merchant.parentNum !== parent.num)) {
      const now = merchant.parentNum === null ? 'without a parent' : 'under another parent';
      throw new InputError('parentMerchantId', `${input.merchantId} already exists ${now}: enrolling a terminal does not change its revenue split`);
    }
    if (merchant !== null && input.shareBps !== undefined && input.shareBps !== merchant.shareBps) {
      throw new InputError('shareBps', `${input.merchantId} already shares ${merchant.shareBps} bps with its parent: enrolling a terminal does not change its revenue split`);
    }
    return opened;
  }

  /**
   * Issues an enrolled terminal a new certificate under the current trust anchor (same key, kind
   * and merchant): after a hub key rotation, for wallets that trust only the newer keys.
   */
  reissueCertificate(terminalId: string, validityMs = 365 * DAY_MS): Envelope<'terminal.certificate'> {
    assertName('terminalId', terminalId);
    checkValidityMs(validityMs);
    const t = this.registry.terminal(terminalId);
    if (!t) throw new OperationRefused('NOT_FOUND', `${terminalId} is not enrolled`);
    if (t.revoked) throw new OperationRefused('REVOKED', `${terminalId} is revoked`);
    const now = this.clock();
    const c = t.certificate.body;
    const certificate = this.#certificate({ terminalId, kind: c.kind, merchantId: c.merchantId, publicKey: t.publicKey }, now, validityMs);
    if (!this.registry.replaceCertificate(certificate)) throw new OperationRefused('NOT_FOUND', `${terminalId} changed meanwhile`);
    return certificate;
  }

  /** Signed by the trust anchor: the key wallets and terminals were given when provisioned. */
  #certificate(subject: { terminalId: string; kind: TerminalKindT; merchantId: string; publicKey: string }, now: number, validityMs: number): Envelope<'terminal.certificate'> {
    return issueTerminalCertificate(this.#keyring.anchorKey(now), { ...subject, notBefore: now - 60_000, notAfter: now + validityMs });
  }

  revokeTerminal(terminalId: string): boolean {
    const changed = this.registry.revokeTerminal(terminalId, this.clock());
    if (changed) this.announcer.refresh();
    return changed;
  }

  async registerWallet(input: RegisterWalletInput = {}): Promise<RegisteredWallet> {
    if (input.publicKey !== undefined) assertWallet('publicKey', input.publicKey);
    const { ageOver, groups, offlineLimitMinor, validityMs } = licenseAttributes(input, { ageOver: 0, groups: [], offlineLimitMinor: 0 });
    const identity = input.identity ?? {};
    if (JSON.stringify(identity).length > 4096) throw new InputError('identity', 'at most 4 KiB');
    const keyPair = input.publicKey === undefined ? generateKeyPair() : undefined;
    const wallet = input.publicKey ?? toHex((keyPair as KeyPair).publicKey);
    // One registration of a key at a time: a second one waits for the first (it may fail) and is
    // then refused like a later one, not by the registry's UNIQUE constraint after the ledger's await.
    for (let pending = this.#registering.get(wallet); pending; pending = this.#registering.get(wallet)) await pending.catch(() => undefined);
    if (this.registry.wallet(wallet)) throw new InputError('publicKey', 'wallet is already registered');
    const registering = this.#register(wallet, keyPair, { ageOver, groups, offlineLimitMinor, validityMs, identity });
    this.#registering.set(wallet, registering);
    try {
      return await registering;
    } finally {
      if (this.#registering.get(wallet) === registering) this.#registering.delete(wallet);
    }
  }

  async #register(
    wallet: string,
    keyPair: KeyPair | undefined,
    input: { ageOver: number; groups: string[]; offlineLimitMinor: number; validityMs: number; identity: Record<string, unknown> },
  ): Promise<RegisteredWallet> {
    const now = this.clock();
    const license = this.#license(wallet, input, now);
    await this.engine.openWallet(wallet, this.currency);
    this.registry.insertWallet(license, input.identity, now);
    return keyPair ? { license, keyPair } : { license };
  }

  #license(wallet: string, a: { ageOver: number; groups: string[]; offlineLimitMinor: number; validityMs: number }, now: number): Envelope<'wallet.license'> {
    return issueWalletLicense(this.#issuerKey, {
      wallet,
      notBefore: now - 60_000,
      notAfter: now + a.validityMs,
      ageOver: a.ageOver,
      groups: a.groups,
      offlineLimitMinor: a.offlineLimitMinor,
      currency: this.currency,
    });
  }

  /**
   * A new license for a registered wallet, with a serial of its own: a renewal before the old one
   * expires, or changed attributes (groups, age, offline limit). The old one is still honoured
   * until it expires, as terminals deciding offline do (the wallet may not hold the new one yet;
   * what was sold on it must settle), but the hub judges restrictions by the new one's attributes
   * from now on. To stop a license, revoke the wallet. Hand it to the wallet as at registration.
   * A revoked wallet gets none.
   */
  reissueLicense(wallet: string, input: ReissueLicenseInput = {}): Envelope<'wallet.license'> {
    assertWallet('wallet', wallet);
    const current = this.registry.wallet(wallet);
    if (!current) throw new OperationRefused('UNKNOWN_WALLET', 'wallet is not registered');
    if (current.revokedMs !== null) throw new OperationRefused('REVOKED', 'the wallet is revoked: it gets no new license');
    const b = current.license.body;
    const license = this.#license(wallet, licenseAttributes(input, { ageOver: b.ageOver, groups: b.groups, offlineLimitMinor: b.offlineLimitMinor }), this.clock());
    if (!this.registry.replaceLicense(wallet, license, this.clock())) throw new OperationRefused('REVOKED', 'the wallet was revoked meanwhile');
    this.logger.info({ wallet: `${wallet.slice(0, 12)}…`, serial: license.body.serial, notAfter: new Date(license.body.notAfter).toISOString() }, 'license reissued');
    return license;
  }

  /** Revokes a wallet's license and blocklists it, so offline gates stop it too (announced). */
  revokeWallet(wallet: string, reason = 'license revoked'): boolean {
    assertWallet('wallet', wallet);
    const now = this.clock();
    const revoked = this.registry.revokeWallet(wallet, now);
    // Offline terminals learn of a revocation only from the blocklist: listed whether revoked now
    // or before (an entry lifted before blocklistRemove refused that comes back).
    if (this.#walletRevoked(wallet) && this.registry.blocklistAdd(wallet, reason, now)) this.announcer.refresh();
    return revoked;
  }

  #walletRevoked(wallet: string): boolean {
    return (this.registry.wallet(wallet)?.revokedMs ?? null) !== null;
  }

  /** seed 001/002: an explicit operator action, logged before the identity is returned. */
  revealIdentity(wallet: string, operator: string, reason: string): Record<string, unknown> {
    assertWallet('wallet', wallet);
    assertName('operator', operator);
    if (reason.trim().length === 0 || reason.length > 200) throw new InputError('reason', 'expected 1..200 chars');
    const identity = this.registry.revealIdentity(wallet, operator, reason, this.clock());
    if (!identity) throw new OperationRefused('UNKNOWN_WALLET', `no identity for ${wallet.slice(0, 12)}…`);
    this.logger.info({ wallet: `${wallet.slice(0, 12)}…`, operator }, 'identity disclosed');
    return identity;
  }

  // ---------- rules ----------

  importCatalog(raw: unknown): CatalogVersion {
    const parsed = parseCatalogFile(raw);
    if (!parsed.ok) throw new InputError(parsed.field, parsed.message);
    const { merchantId, articles } = parsed.value;
    if (!isMerchantId(merchantId)) throw new InputError('merchantId', 'expected lowercase [a-z0-9._:-]');
    parsed.value.articles.forEach((a, i) => {
      if (a.currency !== this.currency) throw new InputError(`articles.${i}.currency`, `hub settles in ${this.currency}`);
    });
    // Offline sales are priced by the version in force when authorized (catalogAt): the history
    // is kept as long as replay state, then the oldest kept version stands in.
    const now = this.clock();
    const v = this.registry.putCatalog(merchantId, articles, now, now - REPLAY_STATE_RETENTION_MS);
    this.announcer.refresh();
    return v;
  }

  importFares(raw: unknown): FareTableVersion {
    const parsed = parseFareTableFile(raw);
    if (!parsed.ok) throw new InputError(parsed.field, parsed.message);
    if (parsed.value.currency !== this.currency) throw new InputError('currency', `hub settles in ${this.currency}`);
    const v = this.registry.putFares(parsed.value, this.clock());
    this.announcer.refresh();
    return v;
  }

  importProducts(raw: unknown): number {
    const parsed = parseTicketProductsFile(raw);
    if (!parsed.ok) throw new InputError(parsed.field, parsed.message);
    // A station the fare table in force does not know would make a ticket no gate accepts.
    const stations = this.registry.fareVersions().at(-1)?.table.stations;
    parsed.value.forEach((p, i) => {
      if (p.currency !== this.currency) throw new InputError(`products.${i}.currency`, `hub settles in ${this.currency}`);
      p.stations.forEach((st, j) => {
        if (stations !== undefined && !Object.hasOwn(stations, st)) throw new InputError(`products.${i}.stations.${j}`, `${st} is not a station of the fare table in force`);
      });
    });
    const v = this.registry.putProducts(parsed.value, this.clock());
    this.announcer.refresh();
    return v;
  }

  // ---------- money movements by the operator ----------

  /** Operator cash top-up (CLI); the POS path goes through handleRequest. */
  async topUp(input: { wallet: string; amountMinor: number; operatorId: string; requestId?: string }): Promise<Outcome> {
    assertWallet('wallet', input.wallet);
    assertAmount('amountMinor', input.amountMinor);
    // Cash counted by an operator: a typo of a few digits must not mint a fortune.
    if (input.amountMinor > MAX_OPERATOR_TOPUP_MINOR) throw new InputError('amountMinor', `at most ${MAX_OPERATOR_TOPUP_MINOR} minor units per top-up`);
    assertName('operatorId', input.operatorId);
    if (input.requestId !== undefined && !isRequestId(input.requestId)) throw new InputError('requestId', 'expected 32 lowercase hex chars');
    const target = this.registry.wallet(input.wallet);
    if (!target) throw new OperationRefused('UNKNOWN_WALLET', 'wallet is not registered');
    // As at a POS: nothing can ever spend a revoked wallet's balance.
    if (target.revokedMs !== null) throw new OperationRefused('REVOKED', 'the wallet is revoked: a top-up could never be spent');
    return this.engine.submit({
      kind: 'topup',
      requestId: input.requestId ?? newRequestId(),
      walletId: input.wallet,
      amountMinor: input.amountMinor,
      currency: this.currency,
      source: 'cash',
      memo: `operator:${input.operatorId}`,
    });
  }

  /**
   * Full refund of a settled purchase/fare by its request id, at most once. Refunds of one sale
   * run one at a time: a declined attempt gives a ticket back, which must not overtake a
   * concurrent attempt that refunds it.
   */
  async refund(requestId: string, options: { requireHold?: boolean } = {}): Promise<Outcome> {
    const before = this.#refunding.get(requestId) ?? Promise.resolve();
    const attempt = before.catch(() => undefined).then(() => this.#refund(requestId, options));
    this.#refunding.set(requestId, attempt);
    try {
      return await attempt;
    } finally {
      if (this.#refunding.get(requestId) === attempt) this.#refunding.delete(requestId);
    }
  }

  async #refund(requestId: string, options: { requireHold?: boolean }): Promise<Outcome> {
    if (!/^[0-9a-f]{32,64}$/.test(requestId)) throw new InputError('requestId', 'expected 32..64 lowercase hex chars');
    const stored = this.registry.result(requestId);
    let original = stored && stored.status === 'approved' && stored.engineId !== null ? { engineId: stored.engineId, holdUntilMs: stored.holdUntilMs } : undefined;
    if (!original) {
      // Not (or no longer) among the stored results — they are pruned after 35 days, and a late
      // retry may have stored a decline over it: the ledger knows whether it settled.
      const row = await ledgerDecision(this.engine, requestId);
      if (row && row.state !== 'declined') original = { engineId: engineRequestId(requestId), holdUntilMs: row.holdUntilMs };
    }
    if (!original) throw new OperationRefused('NOT_FOUND', `no approved settlement ${requestId}`);
    if (options.requireHold) {
      const until = original.holdUntilMs;
      if (until === null) throw new OperationRefused('NOT_CANCELLABLE', 'the purchase has no cancellation window');
      if (this.clock() >= until) throw new OperationRefused('CANCEL_WINDOW_CLOSED', `its window closed at ${new Date(until).toISOString()}: refund it instead`);
    }
    const { firstId, refundId } = await refundAttemptId(this.engine, 'operator-refund', requestId, this.clock());
    // The ticket's void is claimed under the first id whatever the attempt: asking again is a retry of it.
    const voided = await voidTicketOf(this.registry, requestId, stored?.op === 'ticket.sale', firstId, this.clock());
    if (voided === 'used') throw new OperationRefused('TICKET_USED', `the ticket of ${requestId} was used: not refunded`);
    if (voided) this.announcer.refresh(); // the deny list now carries it: offline gates refuse it too
    const outcome = await this.engine.submit({ kind: 'refund', requestId: refundId, originalRequestId: original.engineId });
    // Not refunded (the merchant's balance short of it, say): the customer keeps a usable ticket.
    // Refunded already, by this or another path: the ticket stays void.
    if (voided && outcome.status === 'declined' && outcome.code !== 'already_refunded') {
      this.registry.unvoidTicket(voided, firstId, this.clock());
      this.announcer.refresh();
    }
    // A refunded fare paid for no exit: its entry record pays for one again (as after a receipt's
    // refund). Also when its stored result is gone (pruned, or lost in a crash): a sale that claimed
    // no record releases nothing.
    if (outcome.status === 'approved') await this.registry.releaseEntryRecordOf(requestId);
    return outcome;
  }

  /** Cancellation inside the window (seed 004 claim 13) on the operator's word. */
  cancel(requestId: string): Promise<Outcome> {
    return this.refund(requestId, { requireHold: true });
  }

  /**
   * Pays a merchant out (hub/clearing/payouts.ts): `ok` once the clearing took it; a send the
   * clearing refused is `UNAVAILABLE` with the payout held (debited, sent again with its id).
   */
  payout(input: { merchantId: string; amountMinor?: number; payoutId?: string }): Promise<PayoutOutcome> {
    if (!isMerchantId(input.merchantId)) throw new InputError('merchantId', 'invalid merchant id');
    if (input.amountMinor !== undefined) assertAmount('amountMinor', input.amountMinor);
    if (input.payoutId !== undefined && !isRequestId(input.payoutId)) throw new InputError('payoutId', 'expected 32 lowercase hex chars');
    return this.#payouts.pay(input);
  }

  /**
   * Moves holds whose window has ended to their merchants, and prunes replay state and incidents
   * past their retention: a bounded slice of each per call (the hold timer runs every second),
   * never one long delete on the event loop. Holds first, and each prune on its own: a registry
   * that cannot commit (a full disk; each prune commits what is queued first) must not keep
   * merchants from their money, nor one failed prune the others. A prune's failure is logged and
   * tried again next tick; the release's is thrown (the timer logs it).
   */
  async releaseDueHolds(): Promise<{ releasedCount: number }> {
    const now = this.clock();
    let released: { releasedCount: number } | undefined;
    let failure: unknown;
    try {
      released = await this.engine.releaseDueHolds(now);
    } catch (err) {
      failure = err;
    }
    const prunes: Array<[string, () => number]> = [
      ['prune challenges', () => this.registry.pruneChallenges(now - REPLAY_STATE_RETENTION_MS, PRUNED_PER_TICK)],
      ['prune results', () => this.registry.pruneResults(now - REPLAY_STATE_RETENTION_MS, PRUNED_PER_TICK)],
      ['prune incidents', () => this.registry.pruneIncidents(now - INCIDENT_RETENTION_MS, PRUNED_PER_TICK)],
    ];
    for (const [task, prune] of prunes) {
      try {
        prune();
        this.#taskFailedMs.delete(task);
      } catch (err) {
        // Once a minute while it keeps failing, not at every tick.
        const last = this.#taskFailedMs.get(task);
        if (last === undefined || now - last >= 60_000) {
          this.#taskFailedMs.set(task, now);
          this.logger.error({ err, task }, 'periodic task failed; tried again at the next tick');
        }
      }
    }
    if (released === undefined) throw failure;
    return released;
  }

  /**
   * Sends payouts that were recorded in the ledger but not confirmed by the clearing adapter (all,
   * or one), with their own ids, after recording the ledger payouts the registry lacks. Returns the
   * payouts it tried, as they are now (a `reason` on those still not sent).
   */
  retryPayouts(options: { payoutId?: string } = {}): Promise<RetriedPayout[]> {
    if (options.payoutId !== undefined && !isRequestId(options.payoutId)) throw new InputError('payoutId', 'expected 32 lowercase hex chars');
    return this.#payouts.retry(options.payoutId);
  }

  /** At start: reconcile the ledger's payouts with the registry, then retry unsent ones (payouts.ts). */
  startPayouts(): Promise<void> {
    return this.#payouts.start();
  }

  // ---------- blocklist ----------

  blocklistAdd(wallet: string, reason = 'operator'): boolean {
    assertWallet('wallet', wallet);
    if (reason.length > 200) throw new InputError('reason', 'at most 200 chars');
    const changed = this.registry.blocklistAdd(wallet, reason, this.clock());
    if (changed) this.announcer.refresh();
    return changed;
  }

  blocklistRemove(wallet: string): boolean {
    assertWallet('wallet', wallet);
    // Offline terminals know a revocation only from the blocklist: lifted, the stolen card would
    // buy offline again (and the hub decline it: goods unpaid).
    if (this.#walletRevoked(wallet)) throw new OperationRefused('REVOKED', 'a revoked wallet stays on the blocklist');
    const changed = this.registry.blocklistRemove(wallet, this.clock());
    if (changed) this.announcer.refresh();
    return changed;
  }

  blocklist(): Array<{ wallet: string; reason: string }> {
    return this.registry.blocklist();
  }

  /** What terminals reported they could not settle (an unsigned passage at a gate), newest first. */
  incidents(options: { wallet?: string; limit?: number } = {}): IncidentRecord[] {
    if (options.wallet !== undefined) assertWallet('wallet', options.wallet);
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new InputError('limit', `expected 1 to 1000, got ${String(options.limit)}`);
    return this.registry.incidents({ ...options, limit });
  }

  // ---------- reads ----------

  async showAccount(id: string, limit = 50): Promise<{ account: Account; history: HistoryItem[] } | undefined> {
    await this.engine.settled(); // its deposits included; not later traffic (a busy hub is never idle)
    const account = await this.engine.getAccount(id);
    if (!account) return undefined;
    return { account, history: await this.engine.history(id, { limit }) };
  }

  /** Recomputes balances from the journal and checks conservation (hub/ledger/verify.ts). */
  async verifyLedger(): Promise<VerifyReport> {
    await this.engine.settled();
    return verifyLedger(this.engine.store);
  }

  /** Dashboard data. `verify: false` skips the full ledger recomputation (it reads every posting). */
  async status(options: { verify?: boolean } = {}): Promise<HubStatus> {
    return {
      hubKey: this.hubPublicKey,
      issuerKey: this.issuerPublicKey,
      currency: this.currency,
      timeMs: this.clock(),
      recentSettlements: await this.engine.recentSettlements(50),
      recentEvents: [...this.#events].reverse(),
      pendingHolds: await this.engine.pendingHolds(100),
      flaggedAccounts: await this.engine.flaggedAccounts(),
      blocklist: this.registry.blocklist(),
      blocklistVersion: this.registry.blocklistVersion(),
      terminals: this.registry.listTerminals(),
      verify: options.verify === false ? null : await this.verifyLedger(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#keyTimer) clearTimeout(this.#keyTimer);
    try {
      await this.#payouts.close();
      await this.engine.close();
      await this.#verifier.close();
      await this.registry.close();
    } finally {
      this.#lock.release();
    }
  }
}

export async function createHub(options: CreateHubOptions): Promise<Hub> {
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? pino({ level: 'silent' });
  if (options.currency !== undefined && !/^[A-Z]{3}$/.test(options.currency)) throw new InputError('currency', 'expected an ISO 4217 code');
  payoutRetryOptions(options.payoutRetry); // bad values: a typed InputError before anything opens
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  ownerOnlyDataDir(options.dataDir, logger);
  const lock = lockDataDir(options.dataDir);
  try {
    return await openHub(options, clock, logger, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

/**
 * The data folder is owner-only (0700) whoever made it: SQLite creates its -wal/-shm files under
 * the umask before any chmod of ours can run, and they hold wallet names and balances, so the
 * folder itself keeps others out of everything in it. A folder another user owns is left as it
 * is, with a warning.
 */
function ownerOnlyDataDir(dataDir: string, logger: Logger): void {
  const mode = statSync(dataDir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    chmodSync(dataDir, 0o700);
  } catch (err) {
    logger.warn(
      { dataDir, mode: mode.toString(8), err },
      'data folder: others can reach it and it cannot be made owner-only (another user owns it?): its SQLite WAL files (wallet names, balances) may be readable by them; chmod 700 it',
    );
  }
}

/** A license's attributes from operator input, each checked (InputError naming it); `kept` fills what is left out. */
function licenseAttributes(
  input: ReissueLicenseInput,
  kept: { ageOver: number; groups: readonly string[]; offlineLimitMinor: number },
): { ageOver: number; groups: string[]; offlineLimitMinor: number; validityMs: number } {
  const ageOver = input.ageOver ?? kept.ageOver;
  if (!Number.isInteger(ageOver) || ageOver < 0 || ageOver > 150) throw new InputError('ageOver', 'expected an integer 0..150');
  const groups = [...(input.groups ?? kept.groups)];
  if (groups.length > 16) throw new InputError('groups', 'at most 16 groups');
  groups.forEach((g, i) => assertName(`groups.${i}`, g));
  const offlineLimitMinor = input.offlineLimitMinor ?? kept.offlineLimitMinor;
  if (!Number.isSafeInteger(offlineLimitMinor) || offlineLimitMinor < 0) throw new InputError('offlineLimitMinor', 'expected an integer ≥ 0');
  const validityMs = input.validityMs ?? 365 * DAY_MS;
  checkValidityMs(validityMs);
  return { ageOver, groups, offlineLimitMinor, validityMs };
}

/** A license's or certificate's lifetime: at most 100 years (the CLI's --validity-days checks the same). */
const MAX_VALIDITY_MS = 36_500 * DAY_MS;

function checkValidityMs(validityMs: number): void {
  if (!Number.isSafeInteger(validityMs) || validityMs <= 0 || validityMs > MAX_VALIDITY_MS) throw new InputError('validityMs', `expected a positive integer of at most ${MAX_VALIDITY_MS} ms (100 years)`);
}

/** The registry's WAL is checkpointed off the event loop this often (registry.ts). */
const REGISTRY_CHECKPOINT_MS = 200;

/** Where the default clearing writes payout instructions, inside the data folder. */
export const PAYOUT_INSTRUCTIONS_DIR = 'payout-instructions';

/** The default settlement currency of a new hub. */
export const DEFAULT_CURRENCY = 'EUR';

/**
 * The currency the hub settles in: the one its ledger holds. A configured one must be it (a hub
 * started again with another would open accounts in it beside the old ones, and a CLI without
 * the config would open them in the default); a new ledger takes the configured one or EUR.
 */
export function settlementCurrency(configured: string | undefined, held: readonly string[]): string {
  if (held.length === 0) return configured ?? DEFAULT_CURRENCY;
  if (configured === undefined) {
    if (held.length === 1) return held[0] as string;
    throw new InputError('currency', `the ledger holds ${held.join(' and ')}: name the hub's currency (its config's currency, the CLI's --currency)`);
  }
  if (!held.includes(configured)) throw new InputError('currency', `this data folder settles in ${held.join(' and ')}, not ${configured}: a hub keeps the currency it started with`);
  return configured;
}

async function openHub(options: CreateHubOptions, clock: () => number, logger: Logger, lock: { release(): void }): Promise<Hub> {
  const issuerKey = loadOrCreateEd25519Key(options.dataDir, 'issuer');
  const registryFile = join(options.dataDir, 'registry.sqlite');
  const ledgerFile = join(options.dataDir, 'ledger.sqlite');
  const registry = Registry.open(registryFile, {
    backgroundCheckpointMs: REGISTRY_CHECKPOINT_MS,
    onCommitError: (err) => logger.error({ err }, 'registry commit failed: its claims and results stay in memory, new claims are refused until one succeeds'),
  });
  let engine: Engine | undefined;
  let keyring: HubKeyring;
  let store: SqliteLedgerStore | undefined;
  let currency: string;
  try {
    keyring = HubKeyring.open(options.dataDir, registry, clock());
    store = SqliteLedgerStore.open(ledgerFile, { ...options.ledgerStore, durability: options.ledgerDurability ?? 'full' });
    // Identities and money: owner-only, like the key files (SQLite gives -wal/-shm the same mode).
    for (const f of [registryFile, ledgerFile]) chmodSync(f, 0o600);
    currency = settlementCurrency(options.currency, await store.currencies());
    // Before the first request: claims the registry lost to a crash or power cut come back from the ledger.
    const restored = await restoreClaimsFromLedger(registry, store);
    if (restored > 0) logger.warn({ restored }, 'wallet claims the registry had lost restored from the ledger');
    engine = await Engine.open(store, { ...options.engine, clock });
    // Named (the hub's config, the CLI's --init/--currency): the ledger holds it from now on. Not
    // by default: a CLI command on an old folder without accounts must not make it EUR for good.
    if (options.currency !== undefined) await engine.openCurrency(currency);
    // After the engine has finished what a crash left open: an overdraft it settled counts too.
    const blocked = await restoreOverspendBlocklist(registry, store, clock());
    if (blocked.length > 0) logger.warn({ wallets: blocked }, 'overspent wallets the registry had lost blocklisted again from the ledger');
  } catch (err) {
    try {
      await (engine ? engine.close() : store?.close());
    } finally {
      await registry.close();
    }
    throw err;
  }
  const hub = new Hub({
    registry,
    engine,
    keyring,
    issuerKey,
    verifier: options.verifier ?? inlineVerifier,
    cardAuthorizer: options.cardAuthorizer,
    clearing: options.clearing ?? new TransferFileClearing(join(options.dataDir, PAYOUT_INSTRUCTIONS_DIR)),
    currency,
    clock,
    logger,
    ...(options.maxSkewMs !== undefined ? { maxSkewMs: options.maxSkewMs } : {}),
    holdReleaseIntervalMs: options.holdReleaseIntervalMs ?? 1000,
    ...(options.payoutRetry !== undefined ? { payoutRetry: options.payoutRetry } : {}),
    lock,
  });
  // Ledger payouts a crash left without a registry record are recorded before the first command;
  // unsent payouts go out in the background (a slow clearing does not hold up the start).
  await hub.startPayouts();
  return hub;
}
