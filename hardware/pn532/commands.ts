// PN532 command codes and payload builders/parsers, NXP UM0701-02 §7. Pure, no I/O.

export const Command = {
  GetFirmwareVersion: 0x02, // §7.2.2
  SAMConfiguration: 0x14, // §7.2.10
  RFConfiguration: 0x32, // §7.3.1
  InDataExchange: 0x40, // §7.3.8
  InListPassiveTarget: 0x4a, // §7.3.5
  InPSL: 0x4e, // §7.3.10
  InRelease: 0x52, // §7.3.11
} as const;

/** §7.3.1 RFConfiguration configuration items. */
export const RfConfigItem = {
  RfField: 0x01,
  VariousTimings: 0x02,
  MaxRetries: 0x05,
} as const;

/** §7.3.5 BrTy: 106 kbps type A (ISO/IEC 14443 Type A). */
export const BRTY_106_TYPE_A = 0x00;

/** §7.1 error codes carried in the Status byte (low 6 bits). */
export const Pn532Status = {
  Ok: 0x00,
  Timeout: 0x01, // target has not answered: in practice the card left the field
  Crc: 0x02,
  Parity: 0x03,
  Framing: 0x05,
  BufferOverflow: 0x07,
  RfProtocol: 0x0b,
  BadCommand: 0x27, // command not acceptable in the current context
  TargetReleased: 0x29,
  WrongTarget: 0x2b, // target not in the field / not found
} as const;

/** §7.3.8: bit 6 of the status byte is MI (more information) for chained data, bit 7 NAD. */
export const STATUS_ERROR_MASK = 0x3f;

export type FirmwareVersion = { ic: number; version: number; revision: number; support: number };

export function parseFirmwareVersion(data: Uint8Array): FirmwareVersion {
  // §7.2.2: D5 03 IC Ver Rev Support (data here starts after the response code)
  if (data.length < 4) throw new RangeError('GetFirmwareVersion response too short');
  return { ic: data[0]!, version: data[1]!, revision: data[2]!, support: data[3]! };
}

/** One ISO 14443-A target from InListPassiveTarget (§7.3.5, 106 kbps type A). */
export type TargetA = {
  tg: number;
  sensRes: number;
  selRes: number;
  uid: Uint8Array;
  ats: Uint8Array;
};

export function parseInListPassiveTarget(data: Uint8Array): TargetA[] {
  // NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1... [ATS...]]
  const nbTg = data[0];
  if (nbTg === undefined) throw new RangeError('InListPassiveTarget response empty');
  const targets: TargetA[] = [];
  let i = 1;
  for (let t = 0; t < nbTg; t++) {
    if (i + 5 > data.length) throw new RangeError('InListPassiveTarget target truncated');
    const tg = data[i]!;
    const sensRes = (data[i + 1]! << 8) | data[i + 2]!;
    const selRes = data[i + 3]!;
    const uidLen = data[i + 4]!;
    i += 5;
    if (i + uidLen > data.length) throw new RangeError('InListPassiveTarget UID truncated');
    const uid = data.slice(i, i + uidLen);
    i += uidLen;
    let ats = new Uint8Array(0);
    // SEL_RES bit 6 (0x20): ISO/IEC 14443-4 compliant, so the PN532 appends the ATS (TL first).
    if ((selRes & 0x20) !== 0 && i < data.length) {
      const atsLen = data[i]!;
      if (atsLen === 0 || i + atsLen > data.length) throw new RangeError('InListPassiveTarget ATS truncated');
      ats = data.slice(i, i + atsLen);
      i += atsLen;
    }
    targets.push({ tg, sensRes, selRes, uid, ats });
  }
  return targets;
}

export function encodeInListPassiveTargetResponse(targets: readonly TargetA[]): Uint8Array {
  const out: number[] = [targets.length];
  for (const t of targets) {
    out.push(t.tg, t.sensRes >> 8, t.sensRes & 0xff, t.selRes, t.uid.length, ...t.uid);
    if ((t.selRes & 0x20) !== 0) out.push(...t.ats);
  }
  return Uint8Array.from(out);
}

/**
 * TFI + response code + data lengths (LEN) a response to `code` can have (§7): the driver NACKs a
 * corrupted frame only if it could be the answer it waits for, not line noise.
 */
export function plausibleResponseLength(code: number, len: number): boolean {
  switch (code) {
    case Command.GetFirmwareVersion:
      return len === 6; // D5 03 IC Ver Rev Support
    case Command.SAMConfiguration:
    case Command.RFConfiguration:
      return len === 2;
    case Command.InPSL:
    case Command.InRelease:
      return len === 3; // D5 code Status
    case Command.InListPassiveTarget:
    case Command.InDataExchange:
      return len >= 3 && len <= 265; // NbTg or Status, then data; up to an extended frame
    default:
      return len >= 2 && len <= 265;
  }
}

/** §7.3.10 InPSL BRit/BRti codes: 0x00 106, 0x01 212, 0x02 424 kbps. */
export const BitRateCode = { Kbps106: 0x00, Kbps212: 0x01, Kbps424: 0x02 } as const;
export type BitRateKbps = 106 | 212 | 424;

export function bitRateCode(kbps: BitRateKbps): number {
  return kbps === 424 ? BitRateCode.Kbps424 : kbps === 212 ? BitRateCode.Kbps212 : BitRateCode.Kbps106;
}

/** Air bit rate in bit/s for an InPSL code (ISO/IEC 14443-3: fc/128 × 2^code). */
export function bitRateFromCode(code: number): number {
  return 106_000 * 2 ** code;
}

/**
 * ISO/IEC 14443-4 §5.2.4 ATS interface byte TA(1): which divisors the card supports. Returns
 * whether `code` (1 = 212, 2 = 424 kbps) is supported in both directions; false without TA(1).
 */
export function atsSupportsBitRate(ats: Uint8Array, code: number): boolean {
  if (code === 0) return true;
  const t0 = ats[1];
  if (t0 === undefined || (t0 & 0x10) === 0) return false;
  const ta = ats[2] ?? 0;
  const bit = 1 << (code - 1); // DR=2 → bit 0, DR=4 → bit 1, DR=8 → bit 2; DS the same shifted by 4
  return (ta & bit) !== 0 && (ta & (bit << 4)) !== 0;
}
