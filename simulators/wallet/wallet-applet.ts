// The wallet applet's APDU state machine (what a JavaCard applet or phone HCE service does),
// see hardware/README.md. Pure apart from the injected authorize function.
import {
  AuthorizeOutcome, CLA_CHAINING_BIT, CLA_ISO, CLA_PROPRIETARY, Ins, MAX_COMMAND_DATA_BYTES, MAX_RESPONSE_CHUNK_BYTES, P2_COMPACT, STORE_P2_REPLACE, Sw,
  TAP_INFO_LICENSE_KIND, TAP_INFO_P1_ALL, TAP_INFO_P2_LICENSE, WALLET_AID, encodeRecordList, encodeResponseApdu, isRecordKindCode, parseCommandApdu, tapInfoKindBit,
  type CommandApdu, type StoredRecord,
} from '../../hardware/wallet-apdu/apdu.ts';
import { RecordStore } from './record-store.ts';

/** Version 2: compact forms (P2 bit 1), TAP INFO, AUTHORIZE that deletes a record, 256-byte answers. */
export const APPLET_VERSION = 2;

export type AppletAuthorizeResult = { kind: 'authorized'; authorizationBytes: Uint8Array } | { kind: 'declined'; code: string };

/** AUTHORIZE P1P2 names a record that must exist and is deleted in the same step as the signature. */
export const DECLINE_RECORD_NOT_FOUND = 'RECORD_NOT_FOUND';

export type WalletAppletOptions = {
  licenseBytes: () => Uint8Array;
  /** The license in the compact form; without it a compact request gets the JSON form. */
  compactLicenseBytes?: () => Uint8Array;
  /** A stored record in the compact form (or as stored when it cannot convert it). */
  compactRecord?: (record: StoredRecord) => Uint8Array;
  /**
   * The offer may be JSON or compact; the authorization comes back in the offer's form, or with
   * `short` as the 80-byte time/counter/signature of AUTHORIZE SHORT (encodeShortAuthorization).
   */
  authorize: (offerBytes: Uint8Array, options: { short: boolean }) => Promise<AppletAuthorizeResult> | AppletAuthorizeResult;
  records?: RecordStore;
  /** Largest response data per APDU (default 256; version 1 sent 200). */
  responseChunkBytes?: number;
};

export class WalletApplet {
  readonly records: RecordStore;
  private selected = false;
  private chain: { ins: number; p1: number; p2: number; parts: Uint8Array[]; bytes: number } | undefined;
  private pendingResponse: Uint8Array | undefined;

  constructor(private readonly options: WalletAppletOptions) {
    this.records = options.records ?? new RecordStore();
  }

  /** Field reset: selection, chaining and pending GET RESPONSE data are volatile. */
  reset(): void {
    this.selected = false;
    this.chain = undefined;
    this.pendingResponse = undefined;
  }

  async process(bytes: Uint8Array): Promise<Uint8Array> {
    const parsed = parseCommandApdu(bytes);
    if (!parsed.ok) return this.status(parsed.sw);
    const c = parsed.apdu;
    const chained = (c.cla & CLA_CHAINING_BIT) !== 0;
    const baseCla = c.cla & ~CLA_CHAINING_BIT;

    if (baseCla === CLA_ISO && c.ins === Ins.GetResponse && !chained) return this.getResponse(c.le ?? 256);
    this.pendingResponse = undefined; // any other command discards unread response data

    if (baseCla === CLA_ISO && c.ins === Ins.Select) {
      this.chain = undefined;
      if (chained) return this.status(Sw.ChainingNotSupported);
      if (c.p1 !== 0x04) return this.status(Sw.WrongP1P2);
      const match = c.data.length === WALLET_AID.length && c.data.every((b, i) => b === WALLET_AID[i]);
      this.selected = match;
      return match ? this.respond(Uint8Array.of(APPLET_VERSION)) : this.status(Sw.FileNotFound);
    }
    if (baseCla !== CLA_PROPRIETARY) return this.status(Sw.ClaNotSupported);
    if (!this.selected) return this.status(Sw.ConditionsNotSatisfied);

    // ISO 7816-4 §5.1.1.1 command chaining: collect until a command without the chaining bit.
    if (this.chain !== undefined && (this.chain.ins !== c.ins || this.chain.p1 !== c.p1 || this.chain.p2 !== c.p2)) {
      this.chain = undefined;
      return this.status(Sw.LastCommandOfChainExpected);
    }
    const soFar = this.chain?.bytes ?? 0;
    if (soFar + c.data.length > MAX_COMMAND_DATA_BYTES) {
      this.chain = undefined;
      return this.status(Sw.WrongLength);
    }
    if (chained) {
      this.chain ??= { ins: c.ins, p1: c.p1, p2: c.p2, parts: [], bytes: 0 };
      this.chain.parts.push(c.data);
      this.chain.bytes += c.data.length;
      return this.status(Sw.Ok);
    }
    const data = this.chain === undefined ? c.data : new Uint8Array(Buffer.concat([...this.chain.parts, c.data]));
    this.chain = undefined;
    return this.dispatch({ ...c, data });
  }

  private async dispatch(c: CommandApdu): Promise<Uint8Array> {
    switch (c.ins) {
      case Ins.GetLicense:
        // Version 1 hosts send P1 P2 = 00 00; only P2 bit 1 (compact) means anything.
        return this.respond(this.license((c.p2 & P2_COMPACT) !== 0));
      case Ins.Authorize:
      case Ins.AuthorizeShort: {
        if (c.data.length === 0) return this.status(Sw.WrongLength);
        // P1P2 ≠ 0000: the record to delete together with the signature (a gate exit consumes its admission record).
        const deleteId = (c.p1 << 8) | c.p2;
        if (deleteId !== 0 && !this.records.list().some((rec) => rec.id === deleteId)) {
          return this.respond(Uint8Array.from([AuthorizeOutcome.Declined, ...Buffer.from(DECLINE_RECORD_NOT_FOUND, 'latin1')]));
        }
        const r = await this.options.authorize(c.data, { short: c.ins === Ins.AuthorizeShort });
        if (r.kind === 'authorized' && deleteId !== 0) this.records.delete(deleteId);
        return r.kind === 'authorized'
          ? this.respond(Uint8Array.from([AuthorizeOutcome.Authorized, ...r.authorizationBytes]))
          : this.respond(Uint8Array.from([AuthorizeOutcome.Declined, ...Buffer.from(r.code, 'latin1')]));
      }
      case Ins.StoreRecord: {
        if (!isRecordKindCode(c.p1) || (c.p2 & ~STORE_P2_REPLACE) !== 0) return this.status(Sw.WrongP1P2);
        if (c.data.length === 0) return this.status(Sw.WrongLength);
        const id = this.records.store(c.p1, c.data, (c.p2 & STORE_P2_REPLACE) !== 0);
        if (id === 'full') return this.status(Sw.NotEnoughMemory);
        if (id === 'too-large') return this.status(Sw.WrongLength);
        return this.respond(Uint8Array.of(id >> 8, id & 0xff));
      }
      case Ins.ReadRecords: {
        if ((c.p2 & ~P2_COMPACT) !== 0 || (c.p1 !== 0 && !isRecordKindCode(c.p1))) return this.status(Sw.WrongP1P2);
        return this.respond(encodeRecordList(this.recordsFor((rec) => c.p1 === 0 || rec.kind === c.p1, (c.p2 & P2_COMPACT) !== 0)));
      }
      case Ins.TapInfo: {
        if ((c.p1 & ~TAP_INFO_P1_ALL) !== 0 || (c.p2 & ~(P2_COMPACT | TAP_INFO_P2_LICENSE)) !== 0) return this.status(Sw.WrongP1P2);
        const compact = (c.p2 & P2_COMPACT) !== 0;
        const records = this.recordsFor((rec) => (c.p1 & tapInfoKindBit(rec.kind)) !== 0, compact);
        const license = (c.p2 & TAP_INFO_P2_LICENSE) !== 0 ? [{ kind: TAP_INFO_LICENSE_KIND, id: 0, bytes: this.license(compact) }] : [];
        return this.respond(encodeRecordList([...license, ...records]));
      }
      case Ins.DeleteRecord: {
        if (c.data.length !== 2) return this.status(Sw.WrongLength);
        return this.status(this.records.delete((c.data[0]! << 8) | c.data[1]!) ? Sw.Ok : Sw.RecordNotFound);
      }
      default:
        return this.status(Sw.InsNotSupported);
    }
  }

  private license(compact: boolean): Uint8Array {
    return compact && this.options.compactLicenseBytes ? this.options.compactLicenseBytes() : this.options.licenseBytes();
  }

  private recordsFor(keep: (rec: StoredRecord) => boolean, compact: boolean): StoredRecord[] {
    const convert = this.options.compactRecord;
    const list = this.records.list().filter(keep);
    return compact && convert ? list.map((rec) => ({ ...rec, bytes: convert(rec) })) : list;
  }

  /** Send at most one chunk now; the rest waits for GET RESPONSE (ISO 7816-4 §5.1.3, SW 61xx). */
  private respond(data: Uint8Array): Uint8Array {
    this.pendingResponse = data;
    return this.getResponse(256);
  }

  private getResponse(le: number): Uint8Array {
    const pending = this.pendingResponse;
    if (pending === undefined) return this.status(Sw.ConditionsNotSatisfied);
    const n = Math.min(le, this.options.responseChunkBytes ?? MAX_RESPONSE_CHUNK_BYTES, pending.length);
    const rest = pending.subarray(n);
    this.pendingResponse = rest.length > 0 ? rest : undefined;
    // 61xx: xx bytes still available, 00 meaning 256 or more.
    const sw = rest.length === 0 ? Sw.Ok : Sw.BytesRemaining | (rest.length >= 256 ? 0 : rest.length);
    return encodeResponseApdu(pending.subarray(0, n), sw);
  }

  private status(sw: number): Uint8Array {
    return encodeResponseApdu(new Uint8Array(0), sw);
  }
}
