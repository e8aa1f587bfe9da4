// Host side of the wallet applet protocol, over any NfcSession (PN532 or simulated).
import { decodeAnyForm, encodeCompact, encodeMessage, toHex, type Envelope } from '../../protocol/index.ts';
import { HardwareError } from '../errors.ts';
import type { NfcSession } from '../nfc/nfc-reader.ts';
import {
  AuthorizeOutcome, CLA_CHAINING_BIT, CLA_ISO, CLA_PROPRIETARY, Ins, MAX_COMMAND_CHUNK_BYTES, MAX_COMMAND_DATA_BYTES, MAX_GET_RESPONSES,
  MAX_RESPONSE_DATA_BYTES, MAX_RECORD_BYTES, P2_COMPACT, RecordKind, STORE_P2_REPLACE, Sw, TAP_INFO_P2_LICENSE, WALLET_AID, decodeRecordList, decodeTapInfo, encodeCommandApdu, parseResponseApdu,
  decodeShortAuthorization, tapInfoKindBit, type RecordKindName, type StoredRecord,
} from './apdu.ts';

export type AuthorizeResult =
  /** The wallet's signed authorization (protocol `wallet.authorization` envelope bytes). */
  | { kind: 'authorized'; authorizationBytes: Uint8Array }
  /** The wallet refused to sign; `code` is a protocol ErrorCode such as BAD_SIGNATURE or STALE_TIMESTAMP. */
  | { kind: 'declined'; code: string };

export type WalletRecord = { kind: RecordKindName; id: number; bytes: Uint8Array };

/** Read options: `compact` asks the wallet for the compact CBOR form (protocol/compact.ts). */
export type ReadOptions = { compact?: boolean };

export type WalletCardOptions = {
  /** Command data per APDU before chaining (1..250; default 250, version 1 hosts used 200). */
  commandChunkBytes?: number;
  /**
   * The session's time is up once it aborts: every later APDU fails with NFC_SESSION_EXPIRED. A
   * wallet that keeps answering (a phone app looping on GET RESPONSE, say) cannot hold the reader.
   */
  signal?: AbortSignal;
};

export type TapInfo = {
  /** License envelope bytes, when asked for. */
  license: Uint8Array | undefined;
  records: WalletRecord[];
};

const KIND_NAMES = Object.fromEntries(Object.entries(RecordKind).map(([k, v]) => [v, k])) as Record<number, RecordKindName>;

/** AUTHORIZE SHORT: the wallet.authorization envelope from the offer, the wallet key and the wallet's time/counter/signature. */
function rebuildAuthorization(offerBytes: Uint8Array, walletKeyHex: string, data: Uint8Array): Uint8Array {
  const offer = decodeAnyForm(offerBytes, 'purchase.offer');
  if (!offer.ok) throw new RangeError(`authorize: the offer does not decode (${offer.code})`);
  const short = decodeShortAuthorization(data);
  if (short === undefined) throw new HardwareError('WALLET_RESPONSE_INVALID', 'AUTHORIZE SHORT answer is not time/counter/signature');
  const b = offer.value.body;
  // The body authorizeOffer (protocol/wallet-auth.ts) signs: the offer's essentials, the wallet key, time, counter.
  const auth: Envelope<'wallet.authorization'> = {
    v: offer.value.v,
    type: 'wallet.authorization',
    body: {
      wallet: walletKeyHex, terminalId: b.terminalId, merchantId: b.merchantId, purpose: b.purpose, challenge: b.challenge,
      amountMinor: b.amountMinor, currency: b.currency, linesDigest: b.linesDigest, time: short.timeMs, counter: short.counter,
    },
    sig: toHex(short.signature),
  };
  return offerBytes[0] === 0x7b ? encodeMessage(auth) : encodeCompact(auth);
}

const toWalletRecord = (rec: StoredRecord): WalletRecord => ({ kind: KIND_NAMES[rec.kind]!, id: rec.id, bytes: rec.bytes });

/**
 * Host side of the wallet applet. Bytes read from the wallet may be JSON or compact whatever was
 * asked (a version 1 wallet only speaks JSON; records come back as they were stored): decode them
 * with protocol's decodeAnyForm.
 */
export class WalletCard {
  private readonly commandChunkBytes: number;
  private readonly signal: AbortSignal | undefined;

  constructor(private readonly session: NfcSession, options: WalletCardOptions = {}) {
    this.signal = options.signal;
    const chunk = options.commandChunkBytes ?? MAX_COMMAND_CHUNK_BYTES;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > 250) throw new RangeError(`commandChunkBytes must be 1..250, got ${chunk}`);
    this.commandChunkBytes = chunk;
  }

  /** SELECT the tapsettle applet by AID. Throws WALLET_STATUS (status 0x6A82) if the card has none. */
  async select(): Promise<{ appletVersion: number }> {
    const r = await this.command(CLA_ISO, Ins.Select, 0x04, 0x00, WALLET_AID);
    this.expectOk(r.sw, 'SELECT');
    return { appletVersion: r.data[0] ?? 0 };
  }

  /** GET LICENSE: the issuer-signed license (protocol `wallet.license` envelope bytes, JSON or compact). */
  async getLicense(options: ReadOptions = {}): Promise<Uint8Array> {
    const r = await this.command(CLA_PROPRIETARY, Ins.GetLicense, 0x00, options.compact ? P2_COMPACT : 0x00, new Uint8Array(0));
    this.expectOk(r.sw, 'GET LICENSE');
    return r.data;
  }

  /**
   * AUTHORIZE: purchase offer bytes in (JSON or compact); the wallet's signed authorization (in the
   * offer's form) or its refusal out. `deleteRecordId`: the wallet deletes that record in the same
   * step as it signs (a gate exit consumes the admission record); if the record is missing it
   * signs nothing and declines with RECORD_NOT_FOUND. `walletKeyHex` (the key of the license the
   * host already holds): AUTHORIZE SHORT, the wallet answers time, counter and signature only and
   * this method rebuilds the same envelope (checkAuthorization still verifies the signature).
   * Both options need applet version 2.
   */
  async authorize(offerBytes: Uint8Array, options: { deleteRecordId?: number; walletKeyHex?: string } = {}): Promise<AuthorizeResult> {
    const id = options.deleteRecordId ?? 0;
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`deleteRecordId must be 1..65535, got ${id}`);
    const short = options.walletKeyHex !== undefined;
    const r = await this.command(CLA_PROPRIETARY, short ? Ins.AuthorizeShort : Ins.Authorize, id >> 8, id & 0xff, offerBytes);
    this.expectOk(r.sw, 'AUTHORIZE');
    const outcome = r.data[0];
    if (short && outcome === AuthorizeOutcome.Authorized) return { kind: 'authorized', authorizationBytes: rebuildAuthorization(offerBytes, options.walletKeyHex!, r.data.subarray(1)) };
    if (outcome === AuthorizeOutcome.Authorized && r.data.length > 1) return { kind: 'authorized', authorizationBytes: r.data.slice(1) };
    if (outcome === AuthorizeOutcome.Declined) return { kind: 'declined', code: Buffer.from(r.data.subarray(1)).toString('latin1') };
    throw new HardwareError('WALLET_RESPONSE_INVALID', 'AUTHORIZE answer has no outcome byte');
  }

  /**
   * STORE RECORD. `replace` drops every stored record of the same kind first (an admission
   * record or the balance statement keeps one slot). Returns the record id, or 'full' when the
   * wallet cannot keep it (store full, 6A84, or the record is over the 8 KiB record limit, 6700).
   */
  async storeRecord(kind: RecordKindName, bytes: Uint8Array, options: { replace?: boolean } = {}): Promise<number | 'full'> {
    if (bytes.length === 0) throw new RangeError('storeRecord: bytes must not be empty');
    if (bytes.length > MAX_RECORD_BYTES) return 'full';
    const r = await this.command(CLA_PROPRIETARY, Ins.StoreRecord, RecordKind[kind], options.replace ? STORE_P2_REPLACE : 0x00, bytes);
    if (r.sw === Sw.NotEnoughMemory || r.sw === Sw.WrongLength) return 'full';
    this.expectOk(r.sw, 'STORE RECORD');
    if (r.data.length !== 2) throw new HardwareError('WALLET_RESPONSE_INVALID', 'STORE RECORD answer must be a 2-byte id');
    return (r.data[0]! << 8) | r.data[1]!;
  }

  /** READ RECORDS of one kind, or all kinds when omitted; all in one answer (GET RESPONSE as needed). */
  async readRecords(kind?: RecordKindName, options: ReadOptions = {}): Promise<WalletRecord[]> {
    const p2 = options.compact ? P2_COMPACT : 0x00;
    const r = await this.command(CLA_PROPRIETARY, Ins.ReadRecords, kind === undefined ? 0x00 : RecordKind[kind], p2, new Uint8Array(0));
    this.expectOk(r.sw, 'READ RECORDS');
    const list: StoredRecord[] | undefined = decodeRecordList(r.data);
    if (list === undefined) throw new HardwareError('WALLET_RESPONSE_INVALID', 'READ RECORDS answer is not a record list');
    return list.map(toWalletRecord);
  }

  /**
   * TAP INFO (applet version 2): the license (if `license`) and every record of `kinds` (default
   * all) in one command, the gate's whole read in one APDU plus GET RESPONSEs. `compact` defaults
   * to true here.
   */
  async tapInfo(options: { license?: boolean; kinds?: readonly RecordKindName[]; compact?: boolean } = {}): Promise<TapInfo> {
    const kinds = options.kinds ?? (Object.keys(RecordKind) as RecordKindName[]);
    const p1 = kinds.reduce((mask, k) => mask | tapInfoKindBit(RecordKind[k]), 0);
    const p2 = (options.license ?? true ? TAP_INFO_P2_LICENSE : 0) | (options.compact ?? true ? P2_COMPACT : 0);
    const r = await this.command(CLA_PROPRIETARY, Ins.TapInfo, p1, p2, new Uint8Array(0));
    this.expectOk(r.sw, 'TAP INFO');
    const info = decodeTapInfo(r.data);
    if (info === undefined) throw new HardwareError('WALLET_RESPONSE_INVALID', 'TAP INFO answer is not a record list');
    if ((p2 & TAP_INFO_P2_LICENSE) !== 0 && info.license === undefined) throw new HardwareError('WALLET_RESPONSE_INVALID', 'TAP INFO answer lacks the license');
    return { license: info.license, records: info.records.map(toWalletRecord) };
  }

  /** DELETE RECORD by id. False when no such record exists. */
  async deleteRecord(id: number): Promise<boolean> {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`id must be 0..65535, got ${id}`);
    const r = await this.command(CLA_PROPRIETARY, Ins.DeleteRecord, 0x00, 0x00, Uint8Array.of(id >> 8, id & 0xff));
    if (r.sw === Sw.RecordNotFound) return false;
    this.expectOk(r.sw, 'DELETE RECORD');
    return true;
  }

  /**
   * One logical command: chained command APDUs (ISO 7816-4 §5.1.1.1) for long data, then GET
   * RESPONSE while the card answers 61xx (§5.1.3). Either the whole answer or a throw.
   */
  async command(cla: number, ins: number, p1: number, p2: number, data: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    if (data.length > MAX_COMMAND_DATA_BYTES) throw new RangeError(`command data must be ≤ ${MAX_COMMAND_DATA_BYTES} bytes, got ${data.length}`);
    let offset = 0;
    let last: { data: Uint8Array; sw: number };
    for (;;) {
      const chunk = data.subarray(offset, offset + this.commandChunkBytes);
      offset += chunk.length;
      const more = offset < data.length;
      last = await this.transmit({ cla: more ? cla | CLA_CHAINING_BIT : cla, ins, p1, p2, data: chunk, le: more ? undefined : 256 });
      if (!more) break;
      if (last.sw !== Sw.Ok) return last; // the card refused the chain; report its status
    }
    const parts: Uint8Array[] = [last.data];
    let total = last.data.length;
    let sw = last.sw;
    // Bounded by bytes and by round trips: this read runs before the terminal's session timer.
    for (let getResponses = 0; (sw & 0xff00) === Sw.BytesRemaining; getResponses++) {
      if (getResponses >= MAX_GET_RESPONSES) throw new HardwareError('WALLET_RESPONSE_TOO_LONG', `answer needs more than ${MAX_GET_RESPONSES} GET RESPONSEs`);
      const le = sw & 0xff || 256;
      const r = await this.transmit({ cla: CLA_ISO, ins: Ins.GetResponse, p1: 0, p2: 0, data: new Uint8Array(0), le });
      // No data, yet "more remain" (61xx): the wallet makes no progress; asking again would loop.
      if (r.data.length === 0 && (r.sw & 0xff00) === Sw.BytesRemaining) throw new HardwareError('WALLET_RESPONSE_INVALID', 'GET RESPONSE answered 61xx with no data');
      total += r.data.length;
      if (total > MAX_RESPONSE_DATA_BYTES) throw new HardwareError('WALLET_RESPONSE_TOO_LONG', `answer exceeds ${MAX_RESPONSE_DATA_BYTES} bytes`);
      parts.push(r.data);
      sw = r.sw;
    }
    return { data: new Uint8Array(Buffer.concat(parts)), sw };
  }

  private async transmit(apdu: Parameters<typeof encodeCommandApdu>[0]): Promise<{ data: Uint8Array; sw: number }> {
    if (this.signal?.aborted) throw new HardwareError('NFC_SESSION_EXPIRED');
    const raw = await this.session.transmit(encodeCommandApdu(apdu));
    const r = parseResponseApdu(raw);
    if (r === undefined) throw new HardwareError('WALLET_RESPONSE_INVALID', 'response APDU shorter than a status word');
    return r;
  }

  private expectOk(sw: number, what: string): void {
    if (sw !== Sw.Ok) throw new HardwareError('WALLET_STATUS', `${what} answered SW ${sw.toString(16).padStart(4, '0')}`, { status: sw });
  }
}
