/**
 * The hub's settlement service, transport-independent: bytes in from an authenticated terminal,
 * hub-signed bytes out. The MQTT layer (issue 4) calls handleRequest/answerReceipt; tests call
 * them directly. Steps for a request (seed 003 first → second signature, seed 004 claims 24–33):
 *   size → decode → terminal enrolled/not revoked/same id → signatures (batched, through the
 *   injected SignatureVerifier) → duplicate request id → license/authorization/replay → rules →
 *   engine.submit (resolves once the withdrawal is durable) → hub-signed result.
 * Every rejection is a signed result (or a signed `error` when the request can't be read), never
 * silence. Results are stored by request id: a retry gets byte-identical bytes back. When the
 * stored result is gone (pruned after 35 days, or lost with the registry's last unsynced commit in
 * a power cut) the ledger answers instead (#settledInLedger): the same decision and amount, signed
 * anew, without the balance statement or ticket the first answer carried.
 */
import type { Logger } from 'pino';
import {
  DEFAULT_MAX_SKEW_MS,
  MAX_BYTES,
  MAX_TERMINAL_PAYLOAD_BYTES,
  decodeMessage,
  encodeMessage,
  fromHex,
  sha256Hex,
  PAID_EXIT_UNUSED,
  signMessage,
  TICKET_NEVER_COLLECTED,
  toHex,
  withinSkew,
  type ArticleT,
  type Body,
  type Envelope,
  type ErrorCode,
  type KeyPair,
} from '../../protocol/index.ts';
import type { Engine } from '../ledger/engine.ts';
import { LedgerError } from '../ledger/errors.ts';
import type { Command, CommandKind, Outcome } from '../ledger/types.ts';
import type { Freshness, IncidentRecord, Registry, ResultRecord, TerminalRecord } from '../registry/registry.ts';
import type { HubKeys } from '../registry/hub-keyring.ts';
import { voidTicketOf } from './ticket-void.ts';
import { checkPrices, holdUntilMs, type CatalogVersion } from '../rules/catalog.ts';
import { fareTableAt, quoteFare } from '../rules/fare-tables.ts';
import { blocklistAfterSettlement } from '../rules/offline-policy.ts';
import { checkCustomer, type RestrictionCheck } from '../rules/restrictions.ts';
import { checkTicket, signTicket } from '../rules/tickets.ts';
import { inlineResultSigner, type ResultSigner } from '../verify/result-signing.ts';
import type { SignatureVerifier, VerifyItem } from '../verify/verifier.ts';
import type { CardAuthorizer } from './card-authorizer.ts';
import { AdmissionRecords, type AdmissionAnswer } from './admission-records.ts';
import { CanonicalMemo } from './canonical-memo.ts';
import { claimMemo } from './claim-memo.ts';
import { mapDecline } from './decline-codes.ts';
import { derivedId, engineRequestId, ledgerDecision, refundAttemptId } from './engine-ids.ts';

type Request = Envelope<'settlement.request'>;
type RequestBody = Body<'settlement.request'>;
type Op = RequestBody['op'];
type ResultBody = Body<'settlement.result'>;
const DAY_MS = 24 * 3600_000;
/** Stored results and used challenges are kept this long (the hub prunes them; hub.ts); older authorizations also fail the counter window. */
export const REPLAY_STATE_RETENTION_MS = 35 * DAY_MS;
type SigningKey = { readonly pair: KeyPair; readonly hex: string; readonly signer: ResultSigner };

export interface SettlementServiceOptions {
  readonly registry: Registry;
  readonly engine: Engine;
  /** The hub's signing keys (rotation: hub/registry/hub-keyring.ts). */
  readonly hubKeys: HubKeys;
  /** Issuer public keys (hex) whose licenses this hub accepts. */
  readonly issuerKeys: readonly string[];
  readonly verifier: SignatureVerifier;
  /** None: card top-ups are refused (NOT_PERMITTED). */
  readonly cardAuthorizer?: CardAuthorizer;
  readonly clock: () => number;
  readonly currency: string;
  readonly logger: Logger;
  readonly maxSkewMs?: number;
  /** Largest single top-up (TIGER_STYLE: a limit on everything). */
  readonly maxTopupMinor?: number;
}

/** What a receipt did (answerReceipt signs it for the terminal). */
export interface ReceiptOutcome {
  readonly status: 'recorded' | 'refunded' | 'duplicate' | 'rejected';
  readonly requestId?: string;
  readonly code?: ErrorCode;
}

/** The request a receipt reports on: its stored result, or what the ledger settled. */
type ReceiptOriginal = Pick<ResultRecord, 'op' | 'status' | 'engineId'>;

/** One settled or declined request, for the dashboard's live view. */
export interface SettlementEvent {
  readonly requestId: string;
  readonly terminalId: string;
  readonly op: string;
  readonly status: 'approved' | 'declined';
  readonly code?: ErrorCode;
  readonly amountMinor: number;
  readonly currency: string;
  readonly timeMs: number;
}

/** Answer for the op, before signing. `cache: false` for transient declines the terminal retries. */
interface Decision {
  status: 'approved' | 'declined';
  code?: ErrorCode;
  withdrawal: 'complete' | 'none';
  amountMinor: number;
  currency: string;
  timeMs: number;
  holdUntil?: number;
  /** Signed and embedded with the result. */
  statement?: Body<'balance.statement'>;
  ticket?: Envelope<'ticket'>;
  /** The admission record an `admission.check` asked about. */
  recordId?: string;
  wallet?: string;
  engineId?: string;
  cache: boolean;
}

interface SignatureChecks {
  readonly items: VerifyItem[];
  readonly checks: Array<{ readonly name: string; readonly index: number }>;
}

/** Licenses (by signature) whose exact body already verified; bounded. */
const MAX_CACHED_LICENSES = 100_000;

const TRANSIENT: ReadonlySet<ErrorCode> = new Set(['UNAVAILABLE', 'INTERNAL', 'TIMEOUT']);

/**
 * Card top-ups whose ledger command failed after the engine took it, remembered at most (past it,
 * no ledger failure of a card top-up voids: #cardTopup). Each stays until its retry is decided.
 */
const MAX_MAYBE_LOGGED_TOPUPS = 10_000;

/**
 * Ledger failures that come before the engine takes a command (engine.ts `submit`: the queue is
 * full, or the engine is closed or stopped and drops its queue) or before its batch is written
 * (`not_committed`: decided on top of a batch that failed): nothing of it was written.
 * Every other failure (`store_failed`: a commit, or its fsync, failed; anything unknown) may have
 * left the command's frames in the WAL, and SQLite's recovery at the next open may keep them.
 */
export function failedBeforeHandOver(err: unknown): boolean {
  return err instanceof LedgerError && (err.code === 'queue_full' || err.code === 'engine_closed' || err.code === 'not_committed');
}

const HOUR_MS = 3600_000;
/** Incidents a terminal may cause per hour with uploads the hub cannot verify or read (#unverifiedIncident). */
export const MAX_UNVERIFIED_INCIDENTS_PER_HOUR = 100;
/** The incident kind of an offline upload whose terminal signature failed or was not checked, or that could not be read. */
const UNVERIFIED_KIND = 'unverified-offline';
/** Decode failures of bytes that still read as a request (JSON): its claims can be named. */
const UNREADABLE_UPLOAD_CODES: ReadonlySet<ErrorCode> = new Set(['MALFORMED', 'WRONG_TYPE', 'UNSUPPORTED_VERSION']);

/** What a decision made without the hub handed over (for an incident): a sale, a passage, a ticket's use. */
function localDecisionClaim(op: Op, hubCurrency: string): { wallet: string; amountMinor: number; currency: string } | undefined {
  switch (op.type) {
    case 'purchase':
    case 'fare': {
      const a = op.authorization.body;
      return { wallet: a.wallet, amountMinor: a.amountMinor, currency: a.currency };
    }
    case 'ticket.use':
      return { wallet: op.ticket.body.wallet, amountMinor: 0, currency: hubCurrency };
    default:
      return undefined;
  }
}

/**
 * Best effort, from bytes that failed to decode: an upload of something its terminal decided
 * without the hub (`offline: true`, a request id) that handed something over — a sale, a fare, a
 * ticket use, or an op type the hub cannot read — with the wallet and amount it claims. Undefined
 * for anything else (an online request, an incident report, a top-up, ...).
 */
function sniffOfflineUpload(payload: Uint8Array, hubCurrency: string): { requestId: string; opType: string; wallet: string; amountMinor: number; currency: string; timeMs: number } | undefined {
  if (payload.length > MAX_TERMINAL_PAYLOAD_BYTES) return undefined;
  let body: Record<string, unknown>;
  try {
    const raw = JSON.parse(Buffer.from(payload).toString('utf8')) as { body?: unknown };
    if (typeof raw?.body !== 'object' || raw.body === null) return undefined;
    body = raw.body as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const requestId = body.requestId;
  if (body.offline !== true || typeof requestId !== 'string' || !/^[0-9a-f]{32,64}$/.test(requestId)) return undefined;
  const op = (typeof body.op === 'object' && body.op !== null ? body.op : {}) as Record<string, unknown>;
  const type = typeof op.type === 'string' && Object.hasOwn(LEDGER_KINDS_OF, op.type) ? op.type : 'unreadable op';
  if (type !== 'purchase' && type !== 'fare' && type !== 'ticket.use' && type !== 'unreadable op') return undefined;
  const inner = (key: string): Record<string, unknown> => {
    const env = op[key] as { body?: unknown } | undefined;
    return typeof env?.body === 'object' && env.body !== null ? (env.body as Record<string, unknown>) : {};
  };
  const auth = inner('authorization');
  const wallet = [auth.wallet, inner('ticket').wallet].find((w): w is string => typeof w === 'string' && /^[0-9a-f]{64}$/.test(w)) ?? '';
  const amountMinor = Number.isSafeInteger(auth.amountMinor) && (auth.amountMinor as number) >= 0 ? (auth.amountMinor as number) : 0;
  const currency = typeof auth.currency === 'string' && /^[A-Z]{3}$/.test(auth.currency) ? auth.currency : hubCurrency;
  const timeMs = Number.isSafeInteger(body.time) && (body.time as number) >= 0 ? (body.time as number) : 0;
  return { requestId, opType: type, wallet, amountMinor, currency, timeMs };
}

/** Best effort: the request id of bytes that failed to decode, so the error can name it. */
function sniffRequestId(payload: Uint8Array): string | undefined {
  // Bytes no terminal may send (an external broker let them through) are not parsed at all.
  if (payload.length > MAX_TERMINAL_PAYLOAD_BYTES) return undefined;
  try {
    const raw = JSON.parse(Buffer.from(payload).toString('utf8')) as { body?: { requestId?: unknown } };
    const id = raw?.body?.requestId;
    return typeof id === 'string' && /^[0-9a-f]{32,64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function item(message: { type: string; body: unknown; sig: string }, publicKeyHex: string, memo: CanonicalMemo): VerifyItem | null {
  try {
    return { signature: fromHex(message.sig), message: memo.bytes(message.type, message.body), publicKey: fromHex(publicKeyHex) };
  } catch {
    return null;
  }
}

/** protocol's `linesDigest` from the memo's text (the request's canonicalization already made it). */
function linesDigestOf(lines: unknown, memo: CanonicalMemo): string {
  return sha256Hex(memo.json(lines));
}

export class SettlementService {
  readonly #o: SettlementServiceOptions;
  /** A signer per hub key, made when the key first signs (rotation adds keys). */
  readonly #signers = new WeakMap<KeyPair, SigningKey>();
  readonly #maxSkewMs: number;
  readonly #maxTopupMinor: number;
  readonly #inflight = new Map<string, Promise<Uint8Array>>();
  readonly #verifiedLicenses = new Map<string, string>();
  readonly #settlementListeners = new Set<(e: SettlementEvent) => void>();
  /** Unverified incidents each terminal recorded in its current hour (#unverifiedIncident). */
  readonly #unverifiedBudget = new Map<string, { hourStartMs: number; count: number; saidFull: boolean }>();
  readonly #blocklistListeners = new Set<() => void>();
  /**
   * Request ids of card top-ups the ledger may have logged though it failed them (a commit or its
   * fsync failed after the engine took the command): their authorization is never voided by this
   * process (a retry's own failure included), since the ledger's recovery may still credit them.
   * In memory: after a restart the ledger's recovered log answers for them.
   */
  readonly #maybeLoggedTopups = new Set<string>();
  /** Ticket exits and entrances' questions about admission records (admission-records.ts). */
  readonly #admissions: AdmissionRecords;

  constructor(options: SettlementServiceOptions) {
    this.#o = options;
    this.#admissions = new AdmissionRecords({ registry: options.registry, logger: options.logger, currency: options.currency });
    this.#maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
    this.#maxTopupMinor = options.maxTopupMinor ?? 100_000_00;
  }

  /** The key signing at t, with its signer (on the verifier's workers where it has them). */
  #keyAt(t: number): SigningKey {
    const pair = this.#o.hubKeys.signingKey(t);
    let key = this.#signers.get(pair);
    if (!key) {
      key = { pair, hex: toHex(pair.publicKey), signer: this.#o.verifier.resultSigner?.(pair.secretKey) ?? inlineResultSigner(pair.secretKey) };
      this.#signers.set(pair, key);
    }
    return key;
  }

  /** The ledger's outcome of a request whose stored result was pruned (no statement or ticket: those are not kept). */
  async #settledInLedger(body: RequestBody): Promise<Decision | undefined> {
    const row = await ledgerDecision(this.#o.engine, body.requestId);
    if (!row) return undefined;
    const base = { currency: row.currency, timeMs: row.atMs, cache: true };
    const op = body.op;
    const transfer = op.type === 'transfer' ? op.transfer.body : undefined;
    const wallet = 'authorization' in op ? op.authorization.body.wallet : transfer?.from;
    const credited = op.type === 'topup' ? op.wallet : transfer?.to;
    const amountMinor = 'authorization' in op ? op.authorization.body.amountMinor : op.type === 'topup' ? op.amountMinor : transfer?.amountMinor;
    const accountNum = async (id: string) => (await this.#o.engine.getAccount(id))?.num;
    // The stored result's content hash is gone with it; the ledger row still names its kind, its
    // payer (a top-up's, a transfer's payee) and amount: a request under the same id of another
    // kind, from another wallet, or for another amount, is not that settlement.
    const another =
      !LEDGER_KINDS_OF[op.type].includes(row.kind) ||
      (wallet !== undefined && row.payerNum !== null && row.payerNum !== (await accountNum(wallet))) ||
      (credited !== undefined && row.payeeNum !== null && row.payeeNum !== (await accountNum(credited))) ||
      (row.state !== 'declined' && amountMinor !== undefined && row.amountMinor !== amountMinor);
    if (another) {
      // Not stored under the id: the settlement's own retry must still find the ledger's answer.
      return { ...base, cache: false, status: 'declined', code: 'DUPLICATE_MISMATCH', withdrawal: 'none', amountMinor: 0 };
    }
    if (row.state === 'declined') return { ...base, status: 'declined', code: mapDecline(row.code ?? 'not_found'), withdrawal: 'none', amountMinor: 0 };
    const decision: Decision = {
      ...base,
      status: 'approved',
      withdrawal: 'complete',
      amountMinor: row.amountMinor,
      ...(row.holdUntilMs !== null ? { holdUntil: row.holdUntilMs } : {}),
      ...(wallet !== undefined ? { wallet } : {}),
      engineId: engineRequestId(body.requestId),
    };
    if (body.op.type === 'ticket.sale' && wallet !== undefined) {
      // The customer paid for a ticket: the retry's answer carries it (the same one: id and date
      // derive from the sale), by the product's definition now.
      const product = this.#o.registry.product(body.op.product);
      if (product) decision.ticket = this.#issueTicket(product, wallet, body.requestId, row.atMs);
      else this.#o.logger.error({ requestId: body.requestId, product: body.op.product }, 'paid ticket sale whose product is gone: answered without a ticket; refund it');
    }
    return decision;
  }

  /** A stored result answers a duplicate; one signed by a key that has since stopped signing is signed again. */
  async #storedAnswer(bytes: Uint8Array): Promise<Uint8Array> {
    const key = this.#keyAt(this.#o.clock());
    const stored = decodeMessage(bytes, 'settlement.result');
    if (!stored.ok || stored.value.body.hubKey === key.hex) return bytes;
    const { statement, ...result } = stored.value.body;
    return key.signer.signResult({ result: { ...result, hubKey: key.hex }, ...(statement ? { statement: { ...statement.body, hubKey: key.hex } } : {}) });
  }

  onSettlement(cb: (e: SettlementEvent) => void): () => void {
    this.#settlementListeners.add(cb);
    return () => this.#settlementListeners.delete(cb);
  }

  /** Called when the service itself changed the deny list (offline overspend, a ticket voided or given back). */
  onBlocklistChange(cb: () => void): () => void {
    this.#blocklistListeners.add(cb);
    return () => this.#blocklistListeners.delete(cb);
  }

  #blocklistChanged(): void {
    for (const cb of this.#blocklistListeners) cb();
  }

  // ---------------------------------------------------------------- requests

  async handleRequest(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    const now = this.#o.clock();
    if (payload.length > MAX_BYTES['settlement.request']) {
      return this.#error(terminalId, 'TOO_LARGE', `${payload.length} bytes > ${MAX_BYTES['settlement.request']}`, now, undefined);
    }
    const decoded = decodeMessage(payload, 'settlement.request');
    if (!decoded.ok) {
      const upload = UNREADABLE_UPLOAD_CODES.has(decoded.code) ? sniffOfflineUpload(payload, this.#o.currency) : undefined;
      if (upload) {
        const { opType, ...claim } = upload;
        const detail = `${opType} decided without the hub, upload not readable: ${decoded.code}; wallet and amount as claimed`;
        try {
          await this.#unverifiedIncident({ terminalId, ...claim, kind: UNVERIFIED_KIND, detail, recordedMs: now }, decoded.code, opType);
        } catch (err) {
          this.#o.logger.error({ err, terminalId, requestId: upload.requestId }, 'incident for an unreadable offline upload not recorded');
        }
      }
      return this.#error(terminalId, decoded.code, decoded.detail, now, sniffRequestId(payload));
    }
    const req = decoded.value;
    const id = req.body.requestId;
    // Concurrent deliveries of one id (QoS 1 redelivery) wait for the first, then read its result.
    const prior = this.#inflight.get(id);
    if (prior) await prior.catch(() => undefined);
    const work = this.#handle(terminalId, req, now).catch((err: unknown) => {
      // Never silence: even a failure of our own gets a signed answer the terminal can retry on.
      this.#o.logger.error({ err, terminalId, requestId: id }, 'request failed');
      return this.#error(terminalId, 'INTERNAL', 'internal error; retry with the same request id', now, id);
    });
    this.#inflight.set(id, work);
    try {
      return await work;
    } finally {
      if (this.#inflight.get(id) === work) this.#inflight.delete(id);
    }
  }

  async #handle(terminalId: string, req: Request, now: number): Promise<Uint8Array> {
    const body = req.body;
    // A child logger costs more than the rest of a declined request: made only when something is logged.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.#o.logger.child({ terminalId, requestId: body.requestId, op: body.op.type }));
    const terminal = this.#o.registry.terminal(terminalId);
    const decline = (code: ErrorCode, cache = false): Decision => ({
      status: 'declined',
      code,
      withdrawal: 'none',
      amountMinor: 0,
      currency: this.#o.currency,
      timeMs: now,
      cache,
    });
    if (!terminal) return await this.#finish(req, terminalId, decline('UNKNOWN_TERMINAL'), log);
    if (terminal.revoked) return await this.#finish(req, terminalId, decline('REVOKED'), log);
    if (body.terminalId !== terminalId) return await this.#finish(req, terminalId, decline('TERMINAL_MISMATCH'), log);

    // Canonical text by object, for this request only: its objects are decoded here and never
    // changed, so a nested envelope is canonicalized once. Never kept across requests: a memo
    // that outlived them kept each one's objects alive through young-generation collections.
    const memo = new CanonicalMemo();
    const sigs = this.#signatureItems(req, terminal, memo);
    // Content hash of the request from the bytes the terminal signed (before a verifier may move them).
    const hash = sha256Hex((sigs.items[0] as VerifyItem).message);
    const results = await this.#o.verifier.verifyMany(sigs.items);
    if (!results[0]) return await this.#finish(req, terminalId, decline('BAD_SIGNATURE'), log);

    // The terminal is authenticated from here on: its request id is binding.
    const stored = this.#o.registry.result(body.requestId);
    if (stored) {
      if (stored.hash === hash) return await this.#storedAnswer(stored.result);
      // Ids are 80 random bits: another terminal's result under this one means the id leaked (an
      // offline slip prints it) and was taken first. A sale decided here without the hub then goes
      // unpaid: `hash` makes it the operator's incident, as any declined local decision is.
      if (stored.terminalId !== terminalId) log().error({ firstUsedBy: stored.terminalId }, 'request id already used by another terminal');
      return await this.#finish(req, terminalId, decline('DUPLICATE_MISMATCH'), log, hash);
    }
    const failed = sigs.checks.find((c) => !results[c.index]);
    if (failed !== undefined) {
      log().info({ check: failed.name }, 'signature check failed');
      return await this.#finish(req, terminalId, decline('BAD_SIGNATURE', true), log, hash);
    }
    // No stored result, but the ledger may have settled it: results are pruned after
    // REPLAY_STATE_RETENTION_MS, and written ~20 ms after the ledger's fsync, so a crash can lose
    // one. Answer what the ledger decided instead of judging the request again: by now it may be
    // stale, its price changed, its wallet revoked. isLogged answers a new id from the ledger's
    // negative cache, so only a request the ledger has waits for it.
    if (this.#o.engine.store.isLogged(engineRequestId(body.requestId))) {
      const settled = await this.#settledInLedger(body);
      if (settled) {
        this.#maybeLoggedTopups.delete(body.requestId);
        return await this.#finish(req, terminalId, settled, log, hash);
      }
    }
    const op = body.op;
    if ((op.type === 'purchase' || op.type === 'fare' || op.type === 'ticket.sale') && this.#o.issuerKeys.includes(op.license.body.issuerKey)) {
      this.#rememberLicense(op.license, memo);
    }
    if (!body.offline && !withinSkew(body.time, now, this.#maxSkewMs)) {
      return await this.#finish(req, terminalId, decline('STALE_TIMESTAMP', true), log, hash);
    }
    let decision: Decision;
    try {
      decision = await this.#decide(terminal, body, now, decline, memo);
    } catch (err) {
      const code: ErrorCode = err instanceof Error && 'code' in err && (err.code === 'queue_full' || err.code === 'engine_closed') ? 'UNAVAILABLE' : 'INTERNAL';
      log().error({ err }, 'request failed');
      decision = decline(code);
    }
    return await this.#finish(req, terminalId, decision, log, hash);
  }

  /**
   * Every signature the request carries, verified in one batch (index 0 = the terminal's). Checks
   * that can't even be formed (a key in the wrong shape) are given an item that fails. A license
   * whose exact bytes verified before is not verified again (wallets show the same one each tap).
   */
  #signatureItems(req: Request, terminal: TerminalRecord, memo: CanonicalMemo): SignatureChecks {
    const items: VerifyItem[] = [];
    const checks: SignatureChecks['checks'] = [];
    const bad: VerifyItem = { signature: new Uint8Array(64), message: new Uint8Array(0), publicKey: new Uint8Array(32) };
    const add = (name: string, msg: { type: string; body: unknown; sig: string }, key: string): void => {
      items.push(item(msg, key, memo) ?? bad);
      checks.push({ name, index: items.length - 1 });
    };
    add('terminal', req, terminal.publicKey);
    const op = req.body.op;
    switch (op.type) {
      case 'purchase':
      case 'fare':
      case 'ticket.sale': {
        const known = this.#verifiedLicenses.get(op.license.sig);
        const canonical = known !== undefined ? memo.json(op.license.body) : undefined;
        if (known === undefined || known !== canonical) add('license', op.license, op.license.body.issuerKey);
        add('authorization', op.authorization, op.authorization.body.wallet);
        if (op.type === 'fare' && op.entry) {
          const gate = this.#o.registry.terminal(op.entry.body.terminalId);
          if (gate) add('entry', op.entry, gate.publicKey);
        }
        break;
      }
      case 'ticket.exit':
      case 'admission.check': {
        // A gate the registry does not know is answered UNKNOWN_TERMINAL (admission-records.ts).
        const gate = this.#o.registry.terminal(op.entry.body.terminalId);
        if (gate) add('entry', op.entry, gate.publicKey);
        break;
      }
      case 'ticket.use':
        add('ticket', op.ticket, op.ticket.body.hubKey);
        break;
      case 'cancel':
        add('cancellation', op.cancellation, op.cancellation.body.wallet);
        break;
      case 'transfer':
        add('transfer', op.transfer, op.transfer.body.from);
        break;
      case 'history':
        add('query', op.query, op.query.body.wallet);
        break;
      case 'topup':
      case 'incident':
        break;
    }
    return { items, checks };
  }

  #rememberLicense(license: Envelope<'wallet.license'>, memo: CanonicalMemo): void {
    if (this.#verifiedLicenses.has(license.sig)) return;
    if (this.#verifiedLicenses.size >= MAX_CACHED_LICENSES) this.#verifiedLicenses.delete(this.#verifiedLicenses.keys().next().value as string);
    this.#verifiedLicenses.set(license.sig, memo.json(license.body));
  }

  async #decide(terminal: TerminalRecord, body: RequestBody, now: number, decline: (c: ErrorCode, cache?: boolean) => Decision, memo: CanonicalMemo): Promise<Decision> {
    const op = body.op;
    const declined = (code: ErrorCode): Decision => decline(code, !TRANSIENT.has(code));
    switch (op.type) {
      case 'purchase':
      case 'fare':
      case 'ticket.sale':
        return this.#walletPayment(terminal, body, op, now, declined, memo);
      case 'ticket.use':
        return this.#ticketUse(terminal, body, op, now, declined);
      case 'cancel':
        return this.#cancel(body, op, now, declined);
      case 'topup':
        return this.#topup(terminal, body, op, now, declined);
      case 'transfer':
        return this.#transfer(body, op, now, declined);
      case 'history':
        return this.#history(body, op, now, declined);
      case 'incident':
        // Only a gate lets someone through unpaid: no other kind writes the operator's incident list.
        if (terminal.kind !== 'gate') return declined('NOT_PERMITTED');
        return this.#incident(terminal, body, op, now);
      case 'ticket.exit':
        return this.#admissionDecision(await this.#admissions.ticketExit(terminal, body, op, now), now, declined);
      case 'admission.check':
        return this.#admissionDecision(this.#admissions.check(terminal, body, op, now), now, declined);
    }
  }

  /** An admission record's answer (admission-records.ts) as a result: for 0, no money, naming the record asked about. */
  #admissionDecision(a: AdmissionAnswer, now: number, declined: (c: ErrorCode) => Decision): Decision {
    const named = a.recordId !== undefined ? { recordId: a.recordId } : {};
    if (a.status === 'declined') return { ...declined(a.code), ...named };
    return { status: 'approved', withdrawal: 'none', amountMinor: 0, currency: this.#o.currency, timeMs: now, wallet: a.wallet, cache: true, ...named };
  }

  /**
   * A terminal's report of what it could not settle (a gate opened, the wallet never signed):
   * recorded for the operator (`tapsettle incidents`); nothing moves without the wallet's signature.
   */
  async #incident(terminal: TerminalRecord, body: RequestBody, op: Extract<Op, { type: 'incident' }>, now: number): Promise<Decision> {
    const { wallet, kind, amountMinor, currency, detail } = op;
    const recorded = this.#o.registry.putIncident({ requestId: body.requestId, terminalId: terminal.terminalId, wallet, kind, amountMinor, currency, detail, timeMs: body.time, recordedMs: now });
    if (recorded) this.#o.logger.warn({ terminalId: terminal.terminalId, requestId: body.requestId, wallet, kind, amountMinor, currency, detail }, 'incident reported');
    // On disk before the answer leaves: answered, the gate stops re-sending it.
    await this.#o.registry.durable();
    return { status: 'approved', withdrawal: 'none', amountMinor: 0, currency: this.#o.currency, timeMs: now, wallet, cache: true };
  }

  /** License + authorization checks shared by purchase, fare and ticket sale (seed 002, 004 cl. 8). */
  #checkWallet(
    terminal: TerminalRecord,
    body: RequestBody,
    op: Extract<Op, { authorization: unknown }>,
    purpose: 'purchase' | 'fare' | 'ticket',
    now: number,
  ): ErrorCode | null {
    const lic = op.license.body;
    const auth = op.authorization.body;
    if (!this.#o.issuerKeys.includes(lic.issuerKey)) return 'UNKNOWN_ISSUER';
    // An offline decision is judged at the time the wallet signed it (it was valid then).
    const at = body.offline ? auth.time : now;
    // A trip's exit, by the license as it was at the entry: one that expired during the trip must
    // not lock its customer in (the gate admitted them on it).
    const validAt = at > lic.notAfter && op.type === 'fare' ? (this.#admittedAt(op, lic.wallet, at) ?? at) : at;
    if (validAt < lic.notBefore) return 'CERT_NOT_YET_VALID';
    if (validAt > lic.notAfter) return 'CERT_EXPIRED';
    const wallet = this.#o.registry.wallet(lic.wallet);
    if (!wallet) return 'UNKNOWN_WALLET';
    // A license a reissue replaced is still honoured until it expires (as terminals do); any other
    // serial was never this hub's for the wallet.
    if (wallet.revokedMs !== null || (wallet.serial !== lic.serial && !this.#o.registry.isSupersededLicense(lic.wallet, lic.serial))) return 'REVOKED';
    if (auth.wallet !== lic.wallet) return 'MALFORMED';
    if (auth.terminalId !== terminal.terminalId || auth.merchantId !== terminal.merchantId) return 'TERMINAL_MISMATCH';
    if (auth.purpose !== purpose) return 'AMOUNT_MISMATCH';
    if (auth.currency !== this.#o.currency || lic.currency !== this.#o.currency) return 'CURRENCY_MISMATCH';
    if (!body.offline && !withinSkew(auth.time, now, this.#maxSkewMs)) return 'STALE_TIMESTAMP';
    return null;
  }

  /**
   * A fare's passage reported after another gate let the customer out on its entry record as paid
   * here (#paidOnRecordElsewhere): two exits on one record. The operator's incident, for the fare
   * the other exit would have charged.
   */
  async #doubleExit(terminal: TerminalRecord, requestId: string, now: number): Promise<void> {
    const other = this.#o.registry.entryRecordContestedBy(requestId);
    const fare = this.#o.registry.result(requestId);
    if (other === undefined || !fare?.wallet) return;
    const detail = `two exits on one entry record: this fare's passage was reported after ${other} left on its record`.slice(0, 200);
    const incident = { requestId: other, terminalId: terminal.terminalId, wallet: fare.wallet, kind: 'double-exit', amountMinor: fare.amountMinor, currency: fare.currency, detail, timeMs: now, recordedMs: now };
    if (this.#o.registry.putIncident(incident)) this.#o.logger.error({ terminalId: terminal.terminalId, requestId, other, wallet: shortWallet(fare.wallet) }, 'incident: two exits on one entry record');
    await this.#o.registry.durable();
  }

  /**
   * The entry record's claim is an approved fare of this wallet whose gate reported no passage
   * (yet): the customer paid for this trip there and left here. Once that gate reports `passed`,
   * it was two exits on one record (#receipt records an incident). That fare's request id, or undefined.
   */
  #paidOnRecordElsewhere(recordId: string, wallet: string): string | undefined {
    const claimant = this.#o.registry.entryRecordClaimant(recordId);
    const paid = claimant === undefined ? undefined : this.#o.registry.result(claimant);
    const elsewhere = paid?.status === 'approved' && paid.op === 'fare' && paid.wallet === wallet && !this.#o.registry.receiptOutcomes(paid.requestId).includes('passed');
    return elsewhere ? paid.requestId : undefined;
  }

  /** The wallet's license in force at `atMs`: the one presented, unless a reissue had replaced it by then. */
  #licenseInForce(presented: Body<'wallet.license'>, atMs: number): Body<'wallet.license'> {
    const current = this.#o.registry.wallet(presented.wallet)?.license.body;
    if (!current || current.serial === presented.serial) return presented;
    const replacedMs = this.#o.registry.supersededAt(presented.wallet, presented.serial);
    return replacedMs !== undefined && atMs < replacedMs ? presented : current;
  }

  /**
   * When the wallet entered on the fare's admission record, if that record is one the hub trusts:
   * signed by an enrolled gate (its signature checked in the batch: a failure answered
   * BAD_SIGNATURE before this runs) not revoked before it, for this wallet, no later than the exit
   * and within the fare table's longest trip (an old record, say a ticket trip's never claimed,
   * must not stretch a license for good). Undefined for a blocklisted wallet: a stolen wallet's
   * license is not stretched (a revoked one is refused REVOKED anyway).
   */
  #admittedAt(op: Extract<Op, { type: 'fare' }>, wallet: string, exitAt: number): number | undefined {
    const entry = op.entry?.body;
    const maxTripMs = fareTableAt(this.#o.registry.fareVersions(), exitAt)?.table.maxTripMs;
    if (!entry || maxTripMs === undefined || entry.wallet !== wallet || entry.time > exitAt || exitAt - entry.time > maxTripMs || this.#o.registry.isBlocklisted(wallet)) return undefined;
    const gate = this.#o.registry.terminal(entry.terminalId);
    if (!gate || gate.kind !== 'gate' || (gate.revokedMs !== null && entry.time >= gate.revokedMs)) return undefined;
    return entry.time;
  }

  /**
   * Claims the challenge/counter in the registry (committed there within COMMIT_DELAY_MS). A
   * command that moves money carries the claim in its memo too, and the ledger makes it durable
   * with the money (claim-memo.ts).
   */
  #claim(challenge: string, wallet: string, requestId: string, now: number, counter?: number): Freshness {
    return this.#o.registry.claimFreshness({ challenge, wallet, requestId, nowMs: now, ledgerSeq: this.#o.engine.nextSeq, ...(counter !== undefined ? { counter } : {}) });
  }

  /**
   * A retry (same request id, same wallet authorization) whose command the ledger logged with
   * another content hash — by a hub version before claim memos, which are part of the hash — is
   * answered with what the ledger decided then, not DUPLICATE_MISMATCH for a settled payment.
   */
  async #settledByAnotherVersion(claimed: Freshness, outcome: Outcome, body: RequestBody): Promise<Decision | undefined> {
    if (claimed !== 'retry' || outcome.status !== 'declined' || outcome.code !== 'duplicate_mismatch') return undefined;
    return await this.#settledInLedger(body);
  }

  async #walletPayment(
    terminal: TerminalRecord,
    body: RequestBody,
    op: Extract<Op, { type: 'purchase' | 'fare' | 'ticket.sale' }>,
    now: number,
    declined: (c: ErrorCode) => Decision,
    memo: CanonicalMemo,
  ): Promise<Decision> {
    const purpose = op.type === 'purchase' ? 'purchase' : op.type === 'fare' ? 'fare' : 'ticket';
    const bad = this.#checkWallet(terminal, body, op, purpose, now);
    if (bad) return declined(bad);
    const auth = op.authorization.body;
    const lic = op.license.body;
    const wallet = auth.wallet;
    const blocklisted = this.#o.registry.isBlocklisted(wallet);
    const eid = engineRequestId(body.requestId);
    let cmd: Command;
    let claimed: Freshness;
    let product: ReturnType<Registry['product']>;
    /** An offline sale to a customer the hub would have refused. */
    let restricted: Extract<RestrictionCheck, { ok: false }> | undefined;

    if (op.type === 'purchase') {
      if (linesDigestOf(op.lines, memo) !== auth.linesDigest) return declined('AMOUNT_MISMATCH');
      // An offline sale is priced by the catalog the machine priced it by (the version it names,
      // while kept; else the one in force when the wallet authorized it): the goods left at that
      // price, and a price change it had not heard of (or a removed article) must not decline it.
      // Only its own merchant's catalog: a terminal can't price another merchant's goods.
      const catalog = body.offline
        ? ((op.catalogVersion !== undefined ? this.#o.registry.catalogVersion(terminal.merchantId, op.catalogVersion) : undefined) ?? this.#o.registry.catalogAt(terminal.merchantId, auth.time))
        : this.#o.registry.latestCatalog(terminal.merchantId);
      const prices = checkPrices(catalog, op.lines, auth.amountMinor, auth.currency);
      if (!prices.ok) return declined(prices.code);
      // seed 004 claim 14. An offline sale already happened (the goods are gone): the hub settles
      // it and judges the customer afterwards, by the restrictions the machine knew and the ones
      // in force now (the operator may have added one it had not heard of): a customer refused
      // here is the operator's incident (#restrictedOffline).
      const judged = body.offline ? withLatestRestrictions(prices.articles, this.#o.registry.latestCatalog(terminal.merchantId)) : prices.articles;
      // By the license in force when the customer bought (a reissue may have changed groups or age
      // since the one presented): an offline sale at the wallet's signing time.
      const inForce = this.#licenseInForce(lic, body.offline ? auth.time : now);
      const customer = checkCustomer({ ageOver: inForce.ageOver, groups: inForce.groups }, blocklisted, judged);
      if (!customer.ok) {
        if (!body.offline) return declined(customer.code);
        restricted = customer;
      }
      if (auth.amountMinor <= 0) return declined('AMOUNT_INVALID');
      claimed = this.#claim(auth.challenge, wallet, body.requestId, now, auth.counter);
      if (claimed === 'replay') return declined('REPLAY');
      // seed 004 claim 13: a fixed period after the purchase. Online, the purchase is when the
      // ledger logs it, by the hub's own clock: the command carries the window's length and the
      // ledger ends it that long after its log time (kept in the row, the same for a retry, the
      // release and a cancel). Not from the devices' signed times: each may be off by up to the
      // allowed skew, and a slow one shortened the window or closed it on arrival.
      // An offline sale happened at the kiosk, before the hub could log it: its window runs from
      // its authorization, the earlier of the wallet's and the terminal's signed times (neither can
      // stretch it by dating ahead), as its buyer was told: held if it is still open when the hub
      // hears of it, else settled straight through. Those times are not checked against the skew
      // (the sale may be days old): one not before the hub's now is a kiosk clock ahead, and the
      // sale was no later than its upload, so its window runs from the logging, as online.
      const windowMs = holdUntilMs(prices.articles, 0); // the longest window of the articles bought
      let hold: { holdMs: number } | { holdUntilMs: number } | undefined;
      if (windowMs !== undefined) {
        const soldAt = Math.min(auth.time, body.time);
        if (!body.offline || soldAt >= now) hold = { holdMs: windowMs };
        else if (soldAt + windowMs > now) hold = { holdUntilMs: soldAt + windowMs };
      }
      const base = {
        requestId: eid,
        walletId: wallet,
        merchantId: terminal.merchantId,
        amountMinor: auth.amountMinor,
        currency: auth.currency,
        ...hold,
      };
      cmd = body.offline ? { kind: 'offline_purchase', ...base } : { kind: 'purchase', ...base };
    } else if (op.type === 'fare') {
      if (terminal.kind !== 'gate') return declined('NOT_PERMITTED');
      if (!body.offline && blocklisted) return declined('BLOCKLISTED');
      if (!body.offline && !withinSkew(op.exitTime, now, this.#maxSkewMs)) return declined('STALE_TIMESTAMP');
      let entry: { station: string; time: number } | null = null;
      if (op.entry) {
        const gate = this.#o.registry.terminal(op.entry.body.terminalId);
        // The entry's signature was checked in the batch when its gate is enrolled.
        if (!gate || gate.kind !== 'gate') return declined('UNKNOWN_TERMINAL');
        // An entry signed after its gate was revoked may be forged with a stolen key.
        if (gate.revokedMs !== null && op.entry.body.time >= gate.revokedMs) return declined('REVOKED');
        if (op.entry.body.wallet !== wallet) return declined('MALFORMED');
        entry = { station: op.entry.body.station, time: op.entry.body.time };
      }
      // Decided without the hub: priced by the table the gate had (the passage went at that
      // fare), as an offline sale by its catalog version; online, by the table in force.
      const versions = this.#o.registry.fareVersions();
      const version = (body.offline && op.fareTableVersion !== undefined ? versions.find((v) => v.version === op.fareTableVersion) : undefined) ?? fareTableAt(versions, op.exitTime);
      if (!version) return declined('UNAVAILABLE');
      const quote = quoteFare(version.table, entry, op.exitStation, op.exitTime);
      if (quote.currency !== auth.currency) return declined('CURRENCY_MISMATCH');
      if (quote.fareMinor !== auth.amountMinor) return declined('AMOUNT_MISMATCH');
      claimed = this.#claim(auth.challenge, wallet, body.requestId, now, auth.counter);
      if (claimed === 'replay') return declined('REPLAY');
      if (op.entry && this.#o.registry.claimEntryRecord(op.entry.body.recordId, body.requestId, body.offline === true) === 'replay') {
        const paidBy = this.#paidOnRecordElsewhere(op.entry.body.recordId, wallet);
        if (paidBy === undefined) return declined('REPLAY');
        // The same trip, paid once: the customer leaves here on a record whose fare another exit
        // took, where nobody passed (its hub-approved fare could not delete the record). The record
        // is contested by this exit: that fare's unused paid exit is not refunded.
        if (!body.offline) this.#o.registry.contestEntryRecord(op.entry.body.recordId, body.requestId);
        await this.#o.registry.durable();
        this.#o.logger.info({ requestId: body.requestId, paidBy }, 'exit on a record whose fare was paid at another gate: approved, nothing charged');
        return { status: 'approved', withdrawal: 'none', amountMinor: 0, currency: auth.currency, timeMs: now, wallet, cache: true };
      }
      if (quote.fareMinor === 0) {
        // No ledger row carries these claims: they are on disk before the gate hears of them.
        await this.#o.registry.durable();
        return { status: 'approved', withdrawal: 'none', amountMinor: 0, currency: auth.currency, timeMs: now, wallet, cache: true };
      }
      // A passage the gate let through offline already happened: settled, and the blocklisted
      // wallet's trip is the operator's incident, as an offline sale's is (#restrictedOffline).
      if (body.offline && blocklisted) restricted = { ok: false, code: 'BLOCKLISTED', reason: 'wallet is on the blocklist' };
      const base = { requestId: eid, walletId: wallet, merchantId: terminal.merchantId, amountMinor: quote.fareMinor, currency: quote.currency };
      cmd = body.offline ? { kind: 'offline_purchase', ...base } : { kind: 'fare', ...base };
    } else {
      product = this.#o.registry.product(op.product);
      if (!product) return declined('UNKNOWN_ARTICLE');
      if (product.currency !== auth.currency) return declined('CURRENCY_MISMATCH');
      if (product.priceMinor !== auth.amountMinor) return declined('AMOUNT_MISMATCH');
      if (body.offline) return declined('NOT_PERMITTED'); // a ticket needs the hub's signature
      if (blocklisted) return declined('BLOCKLISTED');
      if (auth.amountMinor <= 0) return declined('AMOUNT_INVALID');
      claimed = this.#claim(auth.challenge, wallet, body.requestId, now, auth.counter);
      if (claimed === 'replay') return declined('REPLAY');
      cmd = { kind: 'purchase', requestId: eid, walletId: wallet, merchantId: terminal.merchantId, amountMinor: auth.amountMinor, currency: auth.currency };
    }

    // The claim commits with the money it allows (claim-memo.ts).
    const entryRecord = op.type === 'fare' ? op.entry?.body.recordId : undefined;
    const claim = claimMemo({ wallet, challenge: auth.challenge, requestId: body.requestId, counter: auth.counter, entryRecord });
    const outcome = await this.#o.engine.submit({ ...cmd, memo: claim });
    const settled = await this.#settledByAnotherVersion(claimed, outcome, body);
    if (settled) return settled;
    if (outcome.status === 'declined') {
      // No money moved: the gate keeps the record on the wallet, and it must pay for the exit
      // once the customer has topped up (left claimed, every later fare on it would be a REPLAY).
      if (entryRecord !== undefined) await this.#o.registry.releaseEntryRecordOf(body.requestId);
      return { ...declined(mapDecline(outcome.code)), timeMs: outcome.atMs };
    }
    if (blocklistAfterSettlement(outcome) && this.#o.registry.blocklistOverspent(wallet, outcome.seq, now)) this.#blocklistChanged();
    if (restricted) await this.#restrictedOffline(terminal, body, op.type === 'fare' ? 'fare' : 'purchase', auth, restricted, now);
    const decision = await this.#approved(outcome, wallet, eid);
    if (op.type === 'ticket.sale' && product) decision.ticket = this.#issueTicket(product, wallet, body.requestId, outcome.atMs);
    return decision;
  }

  /**
   * An offline sale or gate passage settled for a customer the hub would have refused online (an
   * age or group restriction, the blocklist): the goods went, or the person passed, where they
   * must not, and only the operator can follow it up. Recorded once (by request id), on disk before the answer.
   */
  async #restrictedOffline(
    terminal: TerminalRecord,
    body: RequestBody,
    what: 'purchase' | 'fare',
    auth: Body<'wallet.authorization'>,
    check: Extract<RestrictionCheck, { ok: false }>,
    now: number,
  ): Promise<void> {
    const detail = `${what} decided without the hub, customer restricted: ${check.code} (${check.reason})`.slice(0, 200);
    const incident = { requestId: body.requestId, terminalId: terminal.terminalId, wallet: auth.wallet, kind: 'restricted-offline', amountMinor: auth.amountMinor, currency: auth.currency, detail, timeMs: body.time, recordedMs: now };
    if (this.#o.registry.putIncident(incident)) {
      this.#o.logger.warn(
        { terminalId: terminal.terminalId, requestId: body.requestId, wallet: shortWallet(auth.wallet), kind: incident.kind, code: check.code, reason: check.reason, amountMinor: auth.amountMinor },
        `incident: an offline ${what === 'fare' ? 'passage' : 'sale'} went to a customer the hub would have refused`,
      );
    }
    await this.#o.registry.durable();
  }

  /**
   * The ticket a sale pays for: its id derived from the request's and dated at the settlement, so
   * the answer to a retry — also one answered from the ledger after a crash lost the stored
   * result — carries the same ticket. Honoured for its whole validity, also after this key
   * retires (hub-keyring.ts).
   */
  #issueTicket(product: NonNullable<ReturnType<Registry['product']>>, wallet: string, requestId: string, settledAtMs: number): Envelope<'ticket'> {
    const ticketId = derivedId('ticket', requestId);
    this.#o.registry.putTicket(ticketId, wallet, product.name, requestId, settledAtMs);
    return signTicket(this.#keyAt(this.#o.clock()).pair, product, wallet, ticketId, settledAtMs);
  }

  async #approved(outcome: Extract<Outcome, { status: 'approved' }>, wallet: string, eid: string): Promise<Decision> {
    return {
      status: 'approved',
      withdrawal: 'complete',
      amountMinor: outcome.amountMinor,
      currency: outcome.currency,
      timeMs: outcome.atMs,
      ...(outcome.holdUntilMs !== undefined ? { holdUntil: outcome.holdUntilMs } : {}),
      // A fresh hub-signed balance the wallet keeps; gates use it for their local risk policy.
      statement: this.#statement(wallet, outcome.balanceAfterMinor, outcome.currency, outcome.atMs, []),
      wallet,
      engineId: eid,
      cache: true,
    };
  }

  #statement(
    wallet: string,
    balanceMinor: number,
    currency: string,
    asOf: number,
    entries: Body<'balance.statement'>['entries'],
  ): Body<'balance.statement'> {
    return { wallet, balanceMinor, currency, asOf, entries, hubKey: this.#keyAt(this.#o.clock()).hex };
  }

  async #ticketUse(
    terminal: TerminalRecord,
    body: RequestBody,
    op: Extract<Op, { type: 'ticket.use' }>,
    now: number,
    declined: (c: ErrorCode) => Decision,
  ): Promise<Decision> {
    if (terminal.kind !== 'gate') return declined('NOT_PERMITTED');
    if (!body.offline && !withinSkew(op.usedAt, now, this.#maxSkewMs)) return declined('STALE_TIMESTAMP');
    // Signature already verified in the batch; checkTicket re-checks issuer, time and station.
    const t = op.ticket.body;
    const check = checkTicket(op.ticket, this.#o.hubKeys.honoursTicket(t.hubKey, t.issuedAt, now) ? [t.hubKey] : [], op.station, op.usedAt);
    if (!check.ok) return declined(check.code);
    const claim = this.#o.registry.claimTicketUse(op.ticket.body.ticketId, body.requestId, terminal.terminalId, op.station, op.usedAt);
    if (claim === 'replay') return declined('TICKET_USED');
    // No ledger row carries a ticket use: it is on disk before the gate hears of it.
    await this.#o.registry.durable();
    return { status: 'approved', withdrawal: 'none', amountMinor: 0, currency: this.#o.currency, timeMs: now, wallet: op.ticket.body.wallet, cache: true };
  }

  async #cancel(body: RequestBody, op: Extract<Op, { type: 'cancel' }>, now: number, declined: (c: ErrorCode) => Decision): Promise<Decision> {
    const c = op.cancellation.body;
    if (!body.offline && !withinSkew(c.time, now, this.#maxSkewMs)) return declined('STALE_TIMESTAMP');
    const original = await this.#saleToCancel(c.originalRequestId, c.wallet);
    if (!original) return declined('NOT_FOUND');
    if (!original.paidByWallet) return declined('NOT_PERMITTED');
    if (original.op !== 'purchase' || original.holdUntilMs === null) return declined('NOT_CANCELLABLE');
    // seed 004 claim 13: the buyer may cancel until the window closes, judged when the hub hears of it.
    if (now >= original.holdUntilMs) return declined('CANCEL_WINDOW_CLOSED');
    if (this.#claim(c.challenge, c.wallet, body.requestId, now) === 'replay') return declined('REPLAY');
    const eid = engineRequestId(body.requestId);
    const outcome = await this.#o.engine.submit({ kind: 'refund', requestId: eid, originalRequestId: original.engineId });
    if (outcome.status === 'declined') return { ...declined(mapDecline(outcome.code)), timeMs: outcome.atMs };
    return await this.#approved(outcome, c.wallet, eid);
  }

  /**
   * The approved settlement a buyer's cancellation names: its stored result, else the ledger's row
   * (the stored result is written ~20 ms after the ledger's fsync, so a crash can lose it, and it is
   * pruned after REPLAY_STATE_RETENTION_MS; a late retry may have stored a decline over it) — as
   * the operator's refund finds it (Hub.#refund). The row names no request type: a purchase is a
   * `purchase` or `offline_purchase` row (a ticket sale's or a gate's carries no hold).
   */
  async #saleToCancel(requestId: string, wallet: string): Promise<{ engineId: string; op: string; holdUntilMs: number | null; paidByWallet: boolean } | undefined> {
    const stored = this.#o.registry.result(requestId);
    if (stored && stored.status === 'approved' && stored.engineId !== null) {
      return { engineId: stored.engineId, op: stored.op, holdUntilMs: stored.holdUntilMs, paidByWallet: stored.wallet === wallet };
    }
    const eid = engineRequestId(requestId);
    if (!this.#o.engine.store.isLogged(eid)) return undefined;
    const row = await ledgerDecision(this.#o.engine, requestId);
    if (!row || row.state === 'declined') return undefined;
    const payer = await this.#o.engine.getAccount(wallet);
    return {
      engineId: eid,
      op: row.kind === 'purchase' || row.kind === 'offline_purchase' ? 'purchase' : row.kind,
      holdUntilMs: row.holdUntilMs,
      paidByWallet: payer !== null && payer.kind === 'wallet' && row.payerNum === payer.num,
    };
  }

  async #topup(
    terminal: TerminalRecord,
    body: RequestBody,
    op: Extract<Op, { type: 'topup' }>,
    _now: number,
    declined: (c: ErrorCode) => Decision,
  ): Promise<Decision> {
    if (op.currency !== this.#o.currency) return declined('CURRENCY_MISMATCH');
    if (op.amountMinor <= 0 || op.amountMinor > this.#maxTopupMinor) return declined('AMOUNT_INVALID');
    const wallet = this.#o.registry.wallet(op.wallet);
    if (!wallet) return declined('UNKNOWN_WALLET');
    if (wallet.revokedMs !== null) return declined('REVOKED');
    if (op.method === 'cash') {
      // seed 004 claims 34–35: cash only at a staff-operated POS, with the operator named.
      if (terminal.kind !== 'pos' || op.operatorId === undefined) return declined('NOT_PERMITTED');
    } else {
      if (!op.sealedCard) return declined('MALFORMED');
      if (body.offline) return declined('NOT_PERMITTED');
      return await this.#cardTopup(body, op, op.sealedCard, declined);
    }
    const eid = engineRequestId(body.requestId);
    const outcome = await this.#o.engine.submit({
      kind: 'topup',
      requestId: eid,
      walletId: op.wallet,
      amountMinor: op.amountMinor,
      currency: op.currency,
      source: op.method,
      ...(op.operatorId !== undefined ? { memo: `operator:${op.operatorId}` } : {}),
    });
    if (outcome.status === 'declined') return { ...declined(mapDecline(outcome.code)), timeMs: outcome.atMs };
    return await this.#approved(outcome, op.wallet, eid);
  }

  /**
   * Card top-up: the authorization is bound to the request id, amount, currency, wallet and
   * sealed card (card-authorizer.ts), then the ledger credits. Nothing credited without a charge:
   * the ledger credits only after an approval of this very content, and no void is sent once the
   * ledger may have logged the credit (its recovery would still credit it): not after any ledger
   * failure once the engine took the command (#maybeLoggedTopups). Nothing charged without a
   * credit: an approval the ledger declines, or refuses before taking it, is voided, and so
   * is an authorization whose answer was lost (a timeout reversal). A void that fails leaves the
   * authorization standing: the terminal's retry (the answer was INTERNAL, not stored) gets the
   * approval replayed and the ledger credits it; after a ledger decline it is logged for the
   * operator to reverse (hub/service README, "Card top-ups").
   */
  async #cardTopup(
    body: RequestBody,
    op: Extract<Op, { type: 'topup' }>,
    sealedCard: NonNullable<Extract<Op, { type: 'topup' }>['sealedCard']>,
    declined: (c: ErrorCode) => Decision,
  ): Promise<Decision> {
    const authorizer = this.#o.cardAuthorizer;
    if (!authorizer) {
      this.#o.logger.warn({ requestId: body.requestId }, 'card top-up refused: this hub has no card authorizer');
      return declined('NOT_PERMITTED');
    }
    const card = { requestId: body.requestId, amountMinor: op.amountMinor, currency: op.currency, wallet: op.wallet };
    let auth: Awaited<ReturnType<CardAuthorizer['authorize']>>;
    try {
      auth = await authorizer.authorize({ ...card, sealedCard });
    } catch (err) {
      // The id authorized other content before (its answer lost, no result stored): refused, nothing
      // credited, and no void — the original's own retry must still find its approval. Not stored
      // under the id, for that retry.
      if (err instanceof Error && 'code' in err && err.code === 'idempotency_mismatch') return { ...declined('DUPLICATE_MISMATCH'), cache: false };
      // Charged or not, the hub can't tell: give it back, then answer INTERNAL (not stored) —
      // unless an earlier attempt's credit may be in the ledger (#maybeLoggedTopups).
      if (!this.#maybeLoggedTopups.has(body.requestId)) await this.#voidCard(card, 'no_answer', err);
      throw err;
    }
    if (!auth.approved) return declined('CARD_DECLINED');
    const eid = engineRequestId(body.requestId);
    let outcome: Outcome;
    try {
      outcome = await this.#o.engine.submit({ kind: 'topup', requestId: eid, walletId: op.wallet, amountMinor: op.amountMinor, currency: op.currency, source: 'card' });
    } catch (err) {
      // Refused before the engine took it (queue full, closed) and no row: nothing logged, the
      // card is given back. Any later failure (a commit or its fsync failed, SQLite's error after
      // the frames were written: neither this connection nor isLogged sees them, yet the WAL
      // recovery at the next open may keep them) may have logged the credit: no void, "ask
      // again", and the id is remembered so that no later failure of its retries voids it either.
      // The retry after the restart gets the ledger's answer (credited by its recovery, or judged
      // anew: the authorization replays, the ledger credits); a terminal that never retries leaves
      // it to `reconcile-cards` (charged, not credited: reversed at the acquirer).
      const maybeLogged =
        !failedBeforeHandOver(err) || this.#maybeLoggedTopups.has(body.requestId) || this.#maybeLoggedTopups.size >= MAX_MAYBE_LOGGED_TOPUPS || this.#ledgerMayHaveLogged(eid);
      if (!maybeLogged) {
        await this.#voidCard(card, 'ledger_failed', err);
        throw err;
      }
      if (this.#maybeLoggedTopups.size < MAX_MAYBE_LOGGED_TOPUPS) this.#maybeLoggedTopups.add(body.requestId);
      this.#o.logger.error(
        { err, requestId: body.requestId, amountMinor: op.amountMinor, currency: op.currency },
        'card top-up: the ledger failed after taking the credit and may have logged it; authorization NOT voided (the retry gets the ledger\'s answer; else reconcile-cards)',
      );
      return declined('UNAVAILABLE');
    }
    this.#maybeLoggedTopups.delete(body.requestId);
    if (outcome.status === 'declined') {
      await this.#voidCard(card, 'ledger_declined', outcome.code);
      return { ...declined(mapDecline(outcome.code)), timeMs: outcome.atMs };
    }
    return await this.#approved(outcome, op.wallet, eid);
  }

  /** True unless the ledger surely has no row for the id (an unreadable ledger may have one). */
  #ledgerMayHaveLogged(eid: string): boolean {
    try {
      return this.#o.engine.store.isLogged(eid);
    } catch {
      return true;
    }
  }

  /** Voids a card authorization; false (logged) when the authorizer did not confirm it. */
  async #voidCard(card: Parameters<CardAuthorizer['void']>[0], reason: Parameters<CardAuthorizer['void']>[1], cause: unknown): Promise<boolean> {
    try {
      await this.#o.cardAuthorizer?.void(card, reason);
      this.#o.logger.warn({ requestId: card.requestId, amountMinor: card.amountMinor, reason, cause }, 'card authorization voided');
      return true;
    } catch (err) {
      this.#o.logger.error(
        { err, requestId: card.requestId, amountMinor: card.amountMinor, currency: card.currency, wallet: card.wallet, reason, cause },
        'card authorization NOT voided: the card may stay charged without a credit; reverse it at the authorizer',
      );
      return false;
    }
  }

  async #transfer(body: RequestBody, op: Extract<Op, { type: 'transfer' }>, now: number, declined: (c: ErrorCode) => Decision): Promise<Decision> {
    const t = op.transfer.body;
    if (!body.offline && !withinSkew(t.time, now, this.#maxSkewMs)) return declined('STALE_TIMESTAMP');
    if (body.offline) return declined('NOT_PERMITTED');
    if (t.currency !== this.#o.currency) return declined('CURRENCY_MISMATCH');
    if (t.amountMinor <= 0 || t.from === t.to) return declined('AMOUNT_INVALID');
    const from = this.#o.registry.wallet(t.from);
    const to = this.#o.registry.wallet(t.to);
    if (!from || !to) return declined('UNKNOWN_WALLET');
    // Nothing can ever spend a revoked wallet's balance, so nothing goes to one either (as a top-up).
    // A blocklisted recipient may receive: an overspent wallet is repaid that way.
    if (from.revokedMs !== null || to.revokedMs !== null) return declined('REVOKED');
    if (this.#o.registry.isBlocklisted(t.from)) return declined('BLOCKLISTED');
    const claimed = this.#claim(t.challenge, t.from, body.requestId, now, t.counter);
    if (claimed === 'replay') return declined('REPLAY');
    const eid = engineRequestId(body.requestId);
    const outcome = await this.#o.engine.submit({
      kind: 'transfer',
      requestId: eid,
      fromWalletId: t.from,
      toWalletId: t.to,
      amountMinor: t.amountMinor,
      currency: t.currency,
      memo: claimMemo({ wallet: t.from, challenge: t.challenge, requestId: body.requestId, counter: t.counter }),
    });
    const settled = await this.#settledByAnotherVersion(claimed, outcome, body);
    if (settled) return settled;
    if (outcome.status === 'declined') return { ...declined(mapDecline(outcome.code)), timeMs: outcome.atMs };
    return await this.#approved(outcome, t.from, eid);
  }

  async #history(body: RequestBody, op: Extract<Op, { type: 'history' }>, now: number, declined: (c: ErrorCode) => Decision): Promise<Decision> {
    const q = op.query.body;
    if (!withinSkew(q.time, now, this.#maxSkewMs)) return declined('STALE_TIMESTAMP');
    if (!this.#o.registry.wallet(q.wallet)) return declined('UNKNOWN_WALLET');
    if (this.#claim(q.challenge, q.wallet, body.requestId, now) === 'replay') return declined('REPLAY');
    // No ledger row carries the query's challenge: on disk before the history leaves, so a signed
    // query captured on the way cannot be replayed for the history after a power cut.
    await this.#o.registry.durable();
    await this.#o.engine.settled(); // its credits (transfers) included; not later traffic
    const account = await this.#o.engine.getAccount(q.wallet);
    if (!account) return declined('UNKNOWN_WALLET');
    const items = q.limit > 0 ? await this.#o.engine.history(q.wallet, { limit: q.limit }) : [];
    const entries = items
      .filter((h) => h.requestId !== null)
      .map((h) => ({ requestId: h.requestId as string, kind: h.entryKind, amountMinor: h.amountMinor, time: h.atMs }));
    return {
      status: 'approved',
      withdrawal: 'none',
      amountMinor: 0,
      currency: account.currency,
      timeMs: now,
      statement: this.#statement(q.wallet, account.balanceMinor, account.currency, now, entries),
      wallet: q.wallet,
      cache: true,
    };
  }

  /** Signs the result; stores it under the request id when the terminal was authenticated (hash given). */
  async #finish(req: Request, terminalId: string, d: Decision, log: () => Logger, hash?: string): Promise<Uint8Array> {
    const body = req.body;
    // `hash`: the terminal's signature verified, so the report is the terminal's own; without it
    // only the broker vouches for the sender (#unverifiedIncident).
    if (body.offline && d.status === 'declined') await this.#declinedLocalDecision(terminalId, body, d, hash !== undefined);
    const key = this.#keyAt(this.#o.clock());
    const result: Omit<ResultBody, 'statement'> = {
      requestId: body.requestId,
      // The sender the broker authenticated, never the id the request claims: a decline of a
      // request claiming another terminal's id must not be an answer that terminal accepts.
      terminalId,
      status: d.status,
      ...(d.code !== undefined ? { code: d.code } : {}),
      withdrawal: d.withdrawal,
      amountMinor: d.amountMinor,
      currency: d.currency,
      time: d.timeMs,
      ...(d.holdUntil !== undefined ? { holdUntil: d.holdUntil } : {}),
      ...(d.ticket ? { ticket: d.ticket } : {}),
      ...(d.recordId !== undefined ? { recordId: d.recordId } : {}),
      hubKey: key.hex,
    };
    // The statement named the key active when it was built; a window edge since then moves it to this one.
    const statement = d.statement && d.statement.hubKey !== key.hex ? { ...d.statement, hubKey: key.hex } : d.statement;
    const bytes = await key.signer.signResult(statement ? { result, statement } : { result });
    if (hash !== undefined && d.cache) {
      this.#o.registry.putResult({
        requestId: body.requestId,
        terminalId,
        hash,
        op: body.op.type,
        wallet: d.wallet ?? null,
        engineId: d.engineId ?? null,
        status: d.status,
        code: d.code ?? null,
        amountMinor: d.amountMinor,
        currency: d.currency,
        holdUntilMs: d.holdUntil ?? null,
        result: bytes,
        timeMs: d.timeMs,
      });
    }
    if (this.#o.logger.isLevelEnabled('debug')) log().debug({ status: d.status, code: d.code }, 'settlement result');
    const event: SettlementEvent = {
      requestId: body.requestId,
      terminalId,
      op: body.op.type,
      status: d.status,
      ...(d.code !== undefined ? { code: d.code } : {}),
      amountMinor: d.amountMinor,
      currency: d.currency,
      timeMs: d.timeMs,
    };
    for (const cb of this.#settlementListeners) cb(event);
    return bytes;
  }

  /**
   * A sale, fare or ticket use the terminal decided without the hub (offline, or a gate's local
   * decision) that the hub refuses for good (a fare priced by an older table, a replayed counter, a
   * ticket used before): the goods or the passage went unpaid (or a ticket was used twice: fraud or
   * a broken wallet), and only the operator can follow it up. Recorded as an incident (`tapsettle
   * incidents`), on disk before the answer; a retry finds the stored answer. `verified` false: the
   * terminal's signature was not checked or failed — recorded only for the terminal the broker
   * authenticated, as unverified and bounded (#unverifiedIncident).
   */
  async #declinedLocalDecision(terminalId: string, body: RequestBody, d: Decision, verified: boolean): Promise<void> {
    const claim = localDecisionClaim(body.op, this.#o.currency);
    if (d.code === undefined || TRANSIENT.has(d.code) || !claim) return;
    const now = this.#o.clock();
    if (!verified) {
      const detail = `${body.op.type} decided without the hub, declined before its terminal's signature held: ${d.code}; wallet and amount as claimed`;
      return await this.#unverifiedIncident({ requestId: body.requestId, terminalId, ...claim, kind: UNVERIFIED_KIND, detail, timeMs: body.time, recordedMs: now }, d.code, body.op.type);
    }
    const detail = `${body.op.type} decided without the hub, declined: ${d.code}`;
    const incident = { requestId: body.requestId, terminalId, ...claim, kind: 'declined-offline', detail, timeMs: body.time, recordedMs: now };
    if (this.#o.registry.putIncident(incident)) this.#o.logger.warn(incident, 'incident: a decision made without the hub was declined');
    await this.#o.registry.durable();
  }

  /**
   * An upload of something decided without the hub that the hub cannot verify or read, from the
   * sender the broker authenticated (an enrolled terminal, not revoked): goods handed over unpaid,
   * as far as the hub can tell. What it names (wallet, amount) is unverified, so a broken or hostile
   * terminal could fill the operator's list with it: at most MAX_UNVERIFIED_INCIDENTS_PER_HOUR per
   * terminal, the rest only logged. Logged at error; on disk before the answer.
   */
  async #unverifiedIncident(incident: IncidentRecord, code: ErrorCode, opType: string): Promise<void> {
    const { terminalId, requestId } = incident;
    const terminal = this.#o.registry.terminal(terminalId);
    if (!terminal || terminal.revoked) return; // not a sender the broker lets in: nothing it says is recorded
    let budget = this.#unverifiedBudget.get(terminalId);
    if (!budget || incident.recordedMs - budget.hourStartMs >= HOUR_MS) this.#unverifiedBudget.set(terminalId, (budget = { hourStartMs: incident.recordedMs, count: 0, saidFull: false }));
    const fields = { terminalId, requestId, kind: incident.kind, code, op: opType, wallet: shortWallet(incident.wallet), amountMinor: incident.amountMinor, currency: incident.currency };
    if (budget.count >= MAX_UNVERIFIED_INCIDENTS_PER_HOUR) {
      if (!budget.saidFull) this.#o.logger.error(fields, `more than ${MAX_UNVERIFIED_INCIDENTS_PER_HOUR} unverifiable offline uploads from this terminal this hour: not recorded as incidents (a broken or hostile terminal?)`);
      budget.saidFull = true;
      return;
    }
    if (!this.#o.registry.putIncident(incident)) return; // sent again: recorded already
    budget.count++;
    this.#o.logger.error(fields, 'incident: an upload of a decision made without the hub could not be verified or read: goods may have gone unpaid');
    await this.#o.registry.durable();
  }

  /** A signed error for the authenticated sender `terminalId` (a request id read from bad bytes is only echoed). */
  #error(terminalId: string, code: ErrorCode, message: string, now: number, requestId: string | undefined): Uint8Array {
    const key = this.#keyAt(now);
    const body: Body<'error'> = {
      ...(requestId !== undefined ? { requestId } : {}),
      terminalId,
      code,
      message: message.slice(0, 200),
      time: now,
      hubKey: key.hex,
    };
    return encodeMessage(signMessage('error', body, key.pair.secretKey));
  }

  // ---------------------------------------------------------------- receipts

  /**
   * Terminal-signed completion receipt (seed 003 fourth signature). A vending machine's `failed`
   * refunds the purchase automatically, at most once (the refund's id is derived from the
   * request's, so the ledger answers a second receipt with the first refund).
   */
  async handleReceipt(terminalId: string, payload: Uint8Array): Promise<ReceiptOutcome> {
    try {
      return await this.#receipt(terminalId, payload);
    } catch (err) {
      this.#o.logger.error({ err, terminalId }, 'receipt failed');
      const requestId = sniffRequestId(payload);
      return { status: 'rejected', code: 'INTERNAL', ...(requestId !== undefined ? { requestId } : {}) };
    }
  }

  /**
   * handleReceipt, answered: a hub-signed `receipt.ack` once what the receipt did is durable (the
   * refund is, when the ledger answers; the receipt's own record is fsynced here), or a signed
   * `error` for bytes too bad to name their request. The terminal re-sends the receipt until
   * the ack arrives, so a receipt dropped by an overloaded or closing hub is not lost.
   */
  async answerReceipt(terminalId: string, payload: Uint8Array): Promise<Uint8Array> {
    let outcome = await this.handleReceipt(terminalId, payload);
    const now = this.#o.clock();
    const requestId = outcome.requestId;
    if (requestId === undefined) return this.#error(terminalId, outcome.code ?? 'MALFORMED', 'completion receipt not readable', now, undefined);
    if (outcome.status !== 'rejected') {
      try {
        await this.#o.registry.durable();
      } catch (err) {
        this.#o.logger.error({ err, terminalId, requestId: outcome.requestId }, 'receipt not durable');
        outcome = { status: 'rejected', requestId, code: 'INTERNAL' };
      }
    }
    const key = this.#keyAt(now);
    const body: Body<'receipt.ack'> = {
      requestId,
      terminalId,
      status: outcome.status,
      ...(outcome.status === 'rejected' ? { code: outcome.code ?? 'INTERNAL' } : {}),
      time: now,
      hubKey: key.hex,
    };
    return encodeMessage(signMessage('receipt.ack', body, key.pair.secretKey));
  }

  /**
   * What the ledger settled for a receipt's request whose stored result is gone: it is written
   * ~20 ms after the ledger's fsync (a crash can lose it) and pruned after
   * REPLAY_STATE_RETENTION_MS, and a failed dispense must still be refunded. The ledger row does
   * not name the terminal: the receipt's terminal is entitled when the row paid its merchant
   * account. The refund's derived id keeps it at most once, whichever path found the sale.
   */
  async #ledgerOriginal(requestId: string, terminal: TerminalRecord): Promise<ReceiptOriginal | 'NOT_FOUND' | 'TERMINAL_MISMATCH'> {
    const eid = engineRequestId(requestId);
    if (!this.#o.engine.store.isLogged(eid)) return 'NOT_FOUND';
    const row = await ledgerDecision(this.#o.engine, requestId);
    if (!row) return 'NOT_FOUND';
    const merchant = await this.#o.engine.getAccount(terminal.merchantId);
    if (!merchant || merchant.kind !== 'merchant' || row.payeeNum !== merchant.num) return 'TERMINAL_MISMATCH';
    return {
      // An offline sale is an `offline_purchase` row, and so is a fare a gate decided locally.
      op: row.kind === 'offline_purchase' ? (terminal.kind === 'gate' ? 'fare' : 'purchase') : row.kind,
      status: row.state === 'declined' ? 'declined' : 'approved',
      engineId: eid,
    };
  }

  async #receipt(terminalId: string, payload: Uint8Array): Promise<ReceiptOutcome> {
    const now = this.#o.clock();
    const decoded = decodeMessage(payload, 'completion.receipt');
    if (!decoded.ok) {
      // Named when it can be, so the terminal stops re-sending a receipt that will never read.
      const requestId = sniffRequestId(payload);
      return { status: 'rejected', code: decoded.code, ...(requestId !== undefined ? { requestId } : {}) };
    }
    const r = decoded.value.body;
    const reject = (code: ErrorCode): ReceiptOutcome => ({ status: 'rejected', requestId: r.requestId, code });
    const terminal = this.#o.registry.terminal(terminalId);
    if (!terminal) return reject('UNKNOWN_TERMINAL');
    if (terminal.revoked) return reject('REVOKED');
    if (r.terminalId !== terminalId) return reject('TERMINAL_MISMATCH');
    const check = item(decoded.value, terminal.publicKey, new CanonicalMemo());
    const [ok] = check ? await this.#o.verifier.verifyMany([check]) : [false];
    if (!ok) return reject('BAD_SIGNATURE');
    const stored = this.#o.registry.result(r.requestId);
    if (stored && stored.terminalId !== terminalId) return reject('TERMINAL_MISMATCH');
    const original = stored ?? (await this.#ledgerOriginal(r.requestId, terminal));
    if (typeof original === 'string') return reject(original);
    const first = this.#o.registry.putReceipt(r.requestId, r.outcome, terminalId, now);
    const recorded: ReceiptOutcome = { status: first ? 'recorded' : 'duplicate', requestId: r.requestId };
    if (first && r.outcome === 'passed' && terminal.kind === 'gate') await this.#doubleExit(terminal, r.requestId, now);
    /** A failure receipt that would refund, kept without a refund: said once, at its first arrival. */
    const notRefunded = (why: Record<string, string>, msg: string): ReceiptOutcome => {
      if (first) this.#o.logger.warn({ terminalId, requestId: r.requestId, ...why }, msg);
      return recorded;
    };
    if (r.outcome !== 'failed') return recorded;
    if (!refundsOnFailure(terminal.kind, original.op, r.reason) || original.status !== 'approved' || original.engineId === null) return recorded;
    // The terminal reported the goods or the passage delivered before: kept, never both.
    const delivered = this.#o.registry.receiptOutcomes(r.requestId).find((o) => o !== 'failed');
    if (delivered !== undefined) return notRefunded({ delivered }, 'failure receipt after a success receipt: recorded, not refunded');
    // Its entry record was left on the wallet (a delete the card missed) and a gate let the customer
    // out on it: the fare paid for that exit, nothing to give back.
    const exitedOn = terminal.kind === 'gate' ? this.#o.registry.entryRecordContestedBy(r.requestId) : undefined;
    if (exitedOn !== undefined) return notRefunded({ exitedOn }, 'paid exit unused, but its entry record let the customer out elsewhere: recorded, not refunded');
    const { firstId, refundId } = await refundAttemptId(this.#o.engine, 'receipt-refund', r.requestId, now);
    // A ticket sale's refund takes its ticket with it (also when the stored result that said it was
    // one is gone); one the customer used after all is kept, paid.
    const voided = terminal.kind === 'pos' ? await voidTicketOf(this.#o.registry, r.requestId, original.op === 'ticket.sale', firstId, now) : undefined;
    if (voided === 'used') return notRefunded({ ticket: 'used' }, 'failure receipt for a ticket sale whose ticket was used: recorded, not refunded');
    const outcome = await this.#o.engine.submit({ kind: 'refund', requestId: refundId, originalRequestId: original.engineId });
    if (outcome.status === 'declined') {
      // Refunded already (by an earlier attempt, or the operator): the customer has the money back.
      if (outcome.code === 'already_refunded') return { status: 'duplicate', requestId: r.requestId };
      // Not refunded (yet): the customer keeps a usable ticket meanwhile.
      // Not announced void meanwhile: the terminal re-sends the receipt until the merchant can pay.
      if (voided !== undefined) this.#o.registry.unvoidTicket(voided, firstId, now);
      this.#o.logger.warn({ terminalId, requestId: r.requestId, code: outcome.code }, 'refund after failure receipt declined');
      // Short of funds now, not for ever: UNAVAILABLE keeps the terminal re-sending the receipt
      // (its backoff paces the attempts) until the merchant's account covers the refund.
      return reject(outcome.code === 'insufficient_funds' ? 'UNAVAILABLE' : mapDecline(outcome.code));
    }
    if (voided !== undefined) this.#blocklistChanged(); // refunded: on the deny list, so offline gates refuse the ticket too
    // Refunded: the customer owes the exit its record was claimed for (a later fare on it is charged).
    if (terminal.kind === 'gate') await this.#o.registry.releaseEntryRecordOf(r.requestId);
    // The first id again, after its refund: a re-sent receipt (its ack was lost).
    return { status: refundId === firstId && !first ? 'duplicate' : 'refunded', requestId: r.requestId };
  }
}

/**
 * A failure receipt gives the money back (MDB-style: kept only after a successful vend) for: a
 * vending machine's failed dispense; a POS sale it gave up on (its timeout: nothing was handed
 * over), a timeout reversal; an exit gate's fare whose paid exit expired unused (the customer
 * left elsewhere and paid there; the gate sends none while its record could still be claimed),
 * named so by its reason (PAID_EXIT_UNUSED); a POS's ticket sale whose ticket expired in its store
 * uncollected (TICKET_NEVER_COLLECTED; the ticket is voided first).
 */
function refundsOnFailure(kind: TerminalRecord['kind'], op: string, reason: string | undefined): boolean {
  return (
    ((kind === 'vending' || kind === 'pos') && op === 'purchase') ||
    (kind === 'pos' && op === 'ticket.sale' && reason === TICKET_NEVER_COLLECTED) ||
    (kind === 'gate' && op === 'fare' && reason === PAID_EXIT_UNUSED)
  );
}

/**
 * The articles an offline sale is judged by: as the machine priced them, and as the latest catalog
 * has them (a restriction added since counts; one lifted since does not clear the old one).
 */
function withLatestRestrictions(articles: readonly ArticleT[], latest: CatalogVersion | undefined): ArticleT[] {
  const now = new Map((latest?.articles ?? []).map((a) => [a.sku, a]));
  return articles.flatMap((a) => {
    const current = now.get(a.sku);
    return current && current !== a ? [a, current] : [a];
  });
}

/** A wallet named in a log line: its first 12 hex chars (never a full identifier in the logs). */
function shortWallet(wallet: string): string {
  return `${wallet.slice(0, 12)}…`;
}

/** The ledger row kinds each request settles as (none: the op moves no money, so a row under its id is another request's). */
const LEDGER_KINDS_OF: Record<RequestBody['op']['type'], readonly CommandKind[]> = {
  purchase: ['purchase', 'offline_purchase'],
  fare: ['fare', 'offline_purchase'],
  'ticket.sale': ['purchase'],
  topup: ['topup'],
  transfer: ['transfer'],
  cancel: ['refund'],
  'ticket.use': [],
  history: [],
  incident: [],
  'ticket.exit': [],
  'admission.check': [],
};
