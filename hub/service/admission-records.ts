/**
 * Gate admission records the hub hears of outside a fare (terminal/README.md, "A consumed record
 * the exit could not delete"):
 *   - `ticket.exit`: an exit gate let a wallet out on a ticket trip's record (no fare). Recorded as
 *     the record's claim, like a fare's (Registry.claimEntryRecord): a second exit on the same
 *     record — another ticket exit, or a fare — is a REPLAY, and a second ticket exit the
 *     operator's `double-exit` incident.
 *   - `admission.check`: an entrance found a fresh record on a wallet (anti-passback would say
 *     "already inside") and asks whether an exit the hub knows consumed it. Approved for 0 when one
 *     did (the entrance then writes a fresh record), else declined NOT_CONSUMED. No ledger row, no
 *     money; the answer is stored by request id like every result. At most
 *     MAX_ADMISSION_CHECKS_PER_MINUTE per terminal (UNAVAILABLE past it, not stored).
 * Both come from gates only (NOT_PERMITTED), on a record signed by an enrolled gate (its signature
 * checked in the service's batch; UNKNOWN_TERMINAL for a gate the registry does not know, REVOKED
 * for one signed after its gate was revoked).
 */
import type { Logger } from 'pino';
import type { Body, ErrorCode } from '../../protocol/index.ts';
import type { Registry, TerminalRecord } from '../registry/registry.ts';

type RequestBody = Body<'settlement.request'>;
type Op = RequestBody['op'];
type Admission = Extract<Op, { type: 'admission.check' }>['entry'];

/**
 * An entrance asks only on its rare "already inside" path, one customer at a time, within a
 * deadline of under a second: 60 a minute per gate is far above any real use and keeps a broken
 * or hostile terminal from making the hub read and sign answers without end.
 */
export const MAX_ADMISSION_CHECKS_PER_MINUTE = 60;
const MINUTE_MS = 60_000;

export type AdmissionAnswer =
  | { readonly status: 'approved'; readonly wallet: string; readonly recordId?: string }
  | { readonly status: 'declined'; readonly code: ErrorCode; readonly recordId?: string };

export interface AdmissionRecordsOptions {
  readonly registry: Registry;
  readonly logger: Logger;
  /** The hub's currency (an incident names one; a ticket exit moves none). */
  readonly currency: string;
}

function shortWallet(wallet: string): string {
  return `${wallet.slice(0, 12)}…`;
}

export class AdmissionRecords {
  readonly #o: AdmissionRecordsOptions;
  /** Questions each terminal asked in its current minute (bounded by the enrolled terminals). */
  readonly #checks = new Map<string, { minuteStartMs: number; count: number }>();

  constructor(options: AdmissionRecordsOptions) {
    this.#o = options;
  }

  /** Null when the record is signed by an enrolled gate not revoked before it; else the code. */
  #untrustedRecord(entry: Admission): ErrorCode | null {
    const gate = this.#o.registry.terminal(entry.body.terminalId);
    if (!gate || gate.kind !== 'gate') return 'UNKNOWN_TERMINAL';
    // A record signed after its gate was revoked may be forged with a stolen key.
    if (gate.revokedMs !== null && entry.body.time >= gate.revokedMs) return 'REVOKED';
    return null;
  }

  /** `ticket.exit`: the record's claim; a second exit on it is a REPLAY and, for a ticket exit, an incident. */
  async ticketExit(terminal: TerminalRecord, body: RequestBody, op: Extract<Op, { type: 'ticket.exit' }>, now: number): Promise<AdmissionAnswer> {
    if (terminal.kind !== 'gate') return { status: 'declined', code: 'NOT_PERMITTED' };
    const entry = op.entry.body;
    if (entry.ticketId === undefined) return { status: 'declined', code: 'MALFORMED' }; // a fare's record pays at the exit
    const untrusted = this.#untrustedRecord(op.entry);
    if (untrusted) return { status: 'declined', code: untrusted };
    // `opened`: the gate let the wallet out already; a fare that claimed the record first is
    // contested by this exit (its unused paid exit is then not refunded: the customer left here).
    const claimed = this.#o.registry.claimEntryRecord(entry.recordId, body.requestId, true);
    if (claimed === 'replay') {
      const first = this.#o.registry.entryRecordClaimant(entry.recordId);
      const detail = `two exits on one entry record ${entry.recordId}: a ticket exit at ${op.exitStation} after ${first ?? 'another exit'}`.slice(0, 200);
      const incident = { requestId: body.requestId, terminalId: terminal.terminalId, wallet: entry.wallet, kind: 'double-exit', amountMinor: 0, currency: this.#o.currency, detail, timeMs: op.exitTime, recordedMs: now };
      if (this.#o.registry.putIncident(incident)) {
        this.#o.logger.error({ terminalId: terminal.terminalId, requestId: body.requestId, first, recordId: entry.recordId, wallet: shortWallet(entry.wallet) }, 'incident: two exits on one entry record (ticket trip)');
      }
      await this.#o.registry.durable();
      return { status: 'declined', code: 'REPLAY' };
    }
    // No ledger row carries this claim: on disk before the gate hears of it.
    await this.#o.registry.durable();
    if (claimed === 'fresh') this.#o.logger.info({ terminalId: terminal.terminalId, requestId: body.requestId, recordId: entry.recordId, ticketId: entry.ticketId }, 'ticket exit recorded');
    return { status: 'approved', wallet: entry.wallet };
  }

  /** `admission.check`: approved when an exit the hub knows consumed the record, else NOT_CONSUMED. */
  check(terminal: TerminalRecord, body: RequestBody, op: Extract<Op, { type: 'admission.check' }>, now: number): AdmissionAnswer {
    const recordId = op.entry.body.recordId;
    if (terminal.kind !== 'gate') return { status: 'declined', code: 'NOT_PERMITTED', recordId };
    // A question for the customer at the barrier, never a queued report.
    if (body.offline) return { status: 'declined', code: 'NOT_PERMITTED', recordId };
    if (!this.#withinRate(terminal.terminalId, now)) return { status: 'declined', code: 'UNAVAILABLE', recordId };
    const untrusted = this.#untrustedRecord(op.entry);
    if (untrusted) return { status: 'declined', code: untrusted, recordId };
    const consumedBy = this.#o.registry.entryRecordConsumedBy(recordId);
    this.#o.logger.info({ terminalId: terminal.terminalId, requestId: body.requestId, recordId, consumedBy }, consumedBy === undefined ? 'admission check: record not consumed' : 'admission check: record consumed');
    if (consumedBy === undefined) return { status: 'declined', code: 'NOT_CONSUMED', recordId };
    return { status: 'approved', wallet: op.entry.body.wallet, recordId };
  }

  #withinRate(terminalId: string, now: number): boolean {
    let bucket = this.#checks.get(terminalId);
    if (!bucket || now - bucket.minuteStartMs >= MINUTE_MS || now < bucket.minuteStartMs) this.#checks.set(terminalId, (bucket = { minuteStartMs: now, count: 0 }));
    if (bucket.count >= MAX_ADMISSION_CHECKS_PER_MINUTE) {
      if (bucket.count === MAX_ADMISSION_CHECKS_PER_MINUTE) this.#o.logger.warn({ terminalId, limit: MAX_ADMISSION_CHECKS_PER_MINUTE }, 'admission checks over the per-minute limit: answered UNAVAILABLE');
      bucket.count++;
      return false;
    }
    bucket.count++;
    return true;
  }
}
