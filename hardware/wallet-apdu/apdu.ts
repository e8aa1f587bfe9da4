// The tapsettle wallet applet protocol: ISO/IEC 7816-4 short APDUs over ISO/IEC 14443-4.
// Byte layouts are documented in hardware/README.md; this module is pure (no I/O).

/** Proprietary AID (ISO 7816-5 category F: unregistered): F0 'TAPSTL' 01. */
export const WALLET_AID = Uint8Array.of(0xf0, 0x54, 0x41, 0x50, 0x53, 0x54, 0x4c, 0x01);

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;
/** ISO 7816-4 §5.1.1: CLA bit 5 (0x10) set = more command APDUs of this chain follow. */
export const CLA_CHAINING_BIT = 0x10;

export const Ins = {
  Select: 0xa4,
  GetResponse: 0xc0,
  GetLicense: 0x10,
  Authorize: 0x20,
  /** Proprietary (v2): AUTHORIZE answered with time, counter and signature only (the host rebuilds the body). */
  AuthorizeShort: 0x22,
  StoreRecord: 0x30,
  ReadRecords: 0x32,
  DeleteRecord: 0x34,
  /** Proprietary: license + chosen records in one answer (a gate's read in one APDU). */
  TapInfo: 0x40,
} as const;

export const RecordKind = {
  Admission: 0x01,
  Ticket: 0x02,
  BalanceStatement: 0x03,
} as const;
export type RecordKindName = keyof typeof RecordKind;
export type RecordKindCode = (typeof RecordKind)[RecordKindName];

export function isRecordKindCode(n: number): n is RecordKindCode {
  return n === RecordKind.Admission || n === RecordKind.Ticket || n === RecordKind.BalanceStatement;
}

/** STORE RECORD P2 bit 0: replace every stored record of the same kind. */
export const STORE_P2_REPLACE = 0x01;
/** GET LICENSE / READ RECORDS / TAP INFO P2 bit 1: answer envelopes in the compact CBOR form (protocol/compact.ts). */
export const P2_COMPACT = 0x02;
/** TAP INFO P2 bit 0: put the license first in the answer (as kind 00, id 0000). */
export const TAP_INFO_P2_LICENSE = 0x01;
/** TAP INFO P1: bit mask of record kinds (kind 01 → bit 0, 02 → bit 1, 03 → bit 2). */
export const tapInfoKindBit = (kind: RecordKindCode): number => 1 << (kind - 1);
export const TAP_INFO_P1_ALL = 0x07;
/** Kind byte of the license entry in a TAP INFO answer. */
export const TAP_INFO_LICENSE_KIND = 0x00;

/** AUTHORIZE response data, first byte. */
export const AuthorizeOutcome = { Authorized: 0x00, Declined: 0x01 } as const;

// ISO/IEC 7816-4 §5.6 status words used by the applet.
export const Sw = {
  Ok: 0x9000,
  /** 61xx: xx more bytes available with GET RESPONSE (00 = 256 or more). */
  BytesRemaining: 0x6100,
  WrongLength: 0x6700,
  LastCommandOfChainExpected: 0x6883,
  ChainingNotSupported: 0x6884,
  SecurityStatusNotSatisfied: 0x6982,
  ConditionsNotSatisfied: 0x6985,
  WrongData: 0x6a80,
  FileNotFound: 0x6a82,
  RecordNotFound: 0x6a83,
  NotEnoughMemory: 0x6a84,
  WrongP1P2: 0x6b00,
  InsNotSupported: 0x6d00,
  ClaNotSupported: 0x6e00,
  Unknown: 0x6f00,
} as const;

/**
 * Default command data per APDU: 5 header + 250 data + Le = 256 bytes, inside the 262 bytes one
 * PN532 InDataExchange carries (UM0701-02 §7.3.8; the frame is an extended one, §6.2.1.2).
 * Version 1 hosts sent 200; a card accepts any Lc.
 */
export const MAX_COMMAND_CHUNK_BYTES = 250;
/**
 * Largest response data field per APDU the applet sends (then 61xx and GET RESPONSE): 256 + SW
 * fits one InDataExchange answer. Bounded by the host's Le (00 = 256).
 */
export const MAX_RESPONSE_CHUNK_BYTES = 256;
/** Largest record a wallet must accept (a ticket envelope is at most 8 KiB). */
export const MAX_RECORD_BYTES = 8 * 1024;
/** Largest reassembled command data (a purchase offer is at most 8 KiB). */
export const MAX_COMMAND_DATA_BYTES = 8 * 1024;
/** Largest reassembled response the host accepts. */
export const MAX_RESPONSE_DATA_BYTES = 48 * 1024;
/**
 * Most GET RESPONSEs the host sends for one answer: 48 KiB in parts of 96 bytes or more. The
 * bytes bound alone lets a wallet trickling 1 byte per part hold the reader for 48 K round trips.
 */
export const MAX_GET_RESPONSES = 512;

export type CommandApdu = {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data: Uint8Array;
  /** Expected response length; undefined = no Le field (case 1/3), 256 is encoded as 00. */
  le: number | undefined;
};

/** ISO 7816-4 §5.1 short APDU encoding (cases 1–4). */
export function encodeCommandApdu(c: CommandApdu): Uint8Array {
  if (c.data.length > 255) throw new RangeError(`short APDU data must be ≤ 255 bytes, got ${c.data.length}`);
  if (c.le !== undefined && (c.le < 1 || c.le > 256)) throw new RangeError(`le must be 1..256, got ${c.le}`);
  const out: number[] = [c.cla, c.ins, c.p1, c.p2];
  if (c.data.length > 0) out.push(c.data.length, ...c.data);
  if (c.le !== undefined) out.push(c.le & 0xff);
  return Uint8Array.from(out);
}

export type ParsedCommand = { ok: true; apdu: CommandApdu } | { ok: false; sw: number };

/** Parse a short command APDU; a malformed one yields 6700 (wrong length). */
export function parseCommandApdu(bytes: Uint8Array): ParsedCommand {
  if (bytes.length < 4) return { ok: false, sw: Sw.WrongLength };
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const base = { cla, ins, p1, p2 };
  if (bytes.length === 4) return { ok: true, apdu: { ...base, data: new Uint8Array(0), le: undefined } };
  if (bytes.length === 5) return { ok: true, apdu: { ...base, data: new Uint8Array(0), le: bytes[4]! || 256 } };
  const lc = bytes[4]!;
  if (lc === 0) return { ok: false, sw: Sw.WrongLength }; // extended length APDUs are not supported
  if (bytes.length === 5 + lc) return { ok: true, apdu: { ...base, data: bytes.slice(5), le: undefined } };
  if (bytes.length === 6 + lc) return { ok: true, apdu: { ...base, data: bytes.slice(5, 5 + lc), le: bytes[5 + lc]! || 256 } };
  return { ok: false, sw: Sw.WrongLength };
}

export function encodeResponseApdu(data: Uint8Array, sw: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data, 0);
  out[data.length] = sw >> 8;
  out[data.length + 1] = sw & 0xff;
  return out;
}

export function parseResponseApdu(bytes: Uint8Array): { data: Uint8Array; sw: number } | undefined {
  if (bytes.length < 2) return undefined;
  return { data: bytes.slice(0, -2), sw: (bytes[bytes.length - 2]! << 8) | bytes[bytes.length - 1]! };
}

export type StoredRecord = { kind: RecordKindCode; id: number; bytes: Uint8Array };

/** READ RECORDS data: repeated [kind 1][id 2 BE][length 2 BE][bytes] (TAP INFO: the license as kind 00, id 0000). */
export function encodeRecordList(records: ReadonlyArray<{ kind: number; id: number; bytes: Uint8Array }>): Uint8Array {
  const total = records.reduce((n, r) => n + 5 + r.bytes.length, 0);
  const out = new Uint8Array(total);
  let i = 0;
  for (const r of records) {
    out.set([r.kind, r.id >> 8, r.id & 0xff, r.bytes.length >> 8, r.bytes.length & 0xff], i);
    out.set(r.bytes, i + 5);
    i += 5 + r.bytes.length;
  }
  return out;
}

export function decodeRecordList(data: Uint8Array): StoredRecord[] | undefined {
  return decodeEntries(data, false) as StoredRecord[] | undefined;
}

/** TAP INFO data: the record list, optionally led by the license as kind 00, id 0000. */
export function decodeTapInfo(data: Uint8Array): { license: Uint8Array | undefined; records: StoredRecord[] } | undefined {
  const entries = decodeEntries(data, true);
  if (entries === undefined) return undefined;
  const licenses = entries.filter((e) => e.kind === TAP_INFO_LICENSE_KIND);
  if (licenses.length > 1 || (licenses.length === 1 && entries[0] !== licenses[0])) return undefined;
  return { license: licenses[0]?.bytes, records: entries.filter((e): e is StoredRecord => e.kind !== TAP_INFO_LICENSE_KIND) };
}

function decodeEntries(data: Uint8Array, allowLicense: boolean): Array<{ kind: number; id: number; bytes: Uint8Array }> | undefined {
  const out: Array<{ kind: number; id: number; bytes: Uint8Array }> = [];
  let i = 0;
  while (i < data.length) {
    if (i + 5 > data.length) return undefined;
    const kind = data[i]!;
    const id = (data[i + 1]! << 8) | data[i + 2]!;
    const len = (data[i + 3]! << 8) | data[i + 4]!;
    const kindOk = isRecordKindCode(kind) || (allowLicense && kind === TAP_INFO_LICENSE_KIND && id === 0);
    if (!kindOk || i + 5 + len > data.length) return undefined;
    out.push({ kind, id, bytes: data.slice(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

/** AUTHORIZE SHORT answer after the outcome byte 00: time ms (8, BE), counter (8, BE), Ed25519 signature (64). */
export type ShortAuthorization = { timeMs: number; counter: number; signature: Uint8Array };
export const SHORT_AUTHORIZATION_BYTES = 8 + 8 + 64;

export function encodeShortAuthorization(a: ShortAuthorization): Uint8Array {
  if (a.signature.length !== 64) throw new RangeError(`signature must be 64 bytes, got ${a.signature.length}`);
  const out = new Uint8Array(SHORT_AUTHORIZATION_BYTES);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(a.timeMs));
  view.setBigUint64(8, BigInt(a.counter));
  out.set(a.signature, 16);
  return out;
}

export function decodeShortAuthorization(data: Uint8Array): ShortAuthorization | undefined {
  if (data.length !== SHORT_AUTHORIZATION_BYTES) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const timeMs = view.getBigUint64(0);
  const counter = view.getBigUint64(8);
  if (timeMs > BigInt(Number.MAX_SAFE_INTEGER) || counter > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { timeMs: Number(timeMs), counter: Number(counter), signature: data.slice(16) };
}
