// Pure PN532 frame codec, NXP UM0701-02 §6.2.1 (host link frames). No I/O here.

export const TFI_HOST_TO_PN532 = 0xd4;
export const TFI_PN532_TO_HOST = 0xd5;

/** Largest TFI+data length of a normal frame (LEN is one byte). */
export const MAX_NORMAL_FRAME_LENGTH = 255;
/** UM0701-02 §6.2.1.2: extended frames carry up to 265 bytes of TFI+data. */
export const MAX_EXTENDED_FRAME_LENGTH = 265;

// §6.2.1.3 ACK frame and §6.2.1.4 NACK frame.
export const ACK_FRAME = Uint8Array.of(0x00, 0x00, 0xff, 0x00, 0xff, 0x00);
export const NACK_FRAME = Uint8Array.of(0x00, 0x00, 0xff, 0xff, 0x00, 0x00);
// §6.2.1.5 error frame: "syntax error" at application level, TFI-less payload 0x7F.
export const ERROR_FRAME = Uint8Array.of(0x00, 0x00, 0xff, 0x01, 0xff, 0x7f, 0x81, 0x00);
// UM0701-02 ch. 3 (power management), HSU wake-up: a long preamble of 0x55 then zeros before the first command.
export const HSU_WAKEUP_PREAMBLE = Uint8Array.of(0x55, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);

export type Frame =
  | { readonly kind: 'ack' }
  | { readonly kind: 'nack' }
  | { readonly kind: 'error' }
  /** An information frame: tfi is 0xD4 (host to PN532) or 0xD5 (PN532 to host). */
  | { readonly kind: 'info'; readonly tfi: number; readonly data: Uint8Array; readonly extended: boolean };

/** Checksum byte so that sum(bytes) + checksum ≡ 0 (mod 256), as LCS and DCS need. */
export function checksum(bytes: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum += bytes[i] ?? 0;
  return (0x100 - (sum & 0xff)) & 0xff;
}

/**
 * Encode an information frame. Uses a normal frame (§6.2.1.1) when TFI+data fits in 255 bytes,
 * an extended frame (§6.2.1.2) otherwise.
 */
export function encodeInformationFrame(tfi: number, data: Uint8Array): Uint8Array {
  if (tfi !== TFI_HOST_TO_PN532 && tfi !== TFI_PN532_TO_HOST) throw new RangeError(`tfi must be 0xD4 or 0xD5, got ${tfi}`);
  const len = data.length + 1;
  if (len > MAX_EXTENDED_FRAME_LENGTH) throw new RangeError(`data too long for a PN532 frame: ${data.length} bytes`);
  const dcs = checksum([tfi, ...data]);
  if (len <= MAX_NORMAL_FRAME_LENGTH) {
    const out = new Uint8Array(len + 7);
    out.set([0x00, 0x00, 0xff, len, checksum([len]), tfi], 0);
    out.set(data, 6);
    out[6 + data.length] = dcs;
    out[7 + data.length] = 0x00;
    return out;
  }
  const lenM = len >> 8;
  const lenL = len & 0xff;
  const out = new Uint8Array(len + 10);
  out.set([0x00, 0x00, 0xff, 0xff, 0xff, lenM, lenL, checksum([lenM, lenL]), tfi], 0);
  out.set(data, 9);
  out[9 + data.length] = dcs;
  out[10 + data.length] = 0x00;
  return out;
}

export type ParseEvent =
  | Frame
  | { readonly kind: 'corrupt'; readonly reason: 'lcs' | 'length' }
  /** A frame with a good length (LCS) but a bad DCS: `body` is TFI+data as received, maybe damaged. */
  | { readonly kind: 'corrupt'; readonly reason: 'dcs'; readonly body: Uint8Array };

/**
 * Streaming parser: feed it whatever the serial line delivers. It looks for the start code
 * 00 FF, skips garbage before it, waits for partial frames to complete, and reports frames whose
 * LCS/DCS fail as 'corrupt' (the driver NACKs those that look like its answer, §6.2.1.4). The preamble and
 * postamble are optional on receive: some PN532 clones drop them.
 */
export class FrameParser {
  private buffer: Uint8Array = new Uint8Array(0);
  /** Bound on buffered bytes: garbage never grows memory without limit. */
  private readonly maxBufferBytes: number;

  constructor(maxBufferBytes = 4096) {
    this.maxBufferBytes = maxBufferBytes;
  }

  push(chunk: Uint8Array): ParseEvent[] {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer, 0);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    const events: ParseEvent[] = [];
    for (;;) {
      const step = this.next();
      if (step === undefined) break;
      events.push(step);
    }
    if (this.buffer.length > this.maxBufferBytes) this.buffer = this.buffer.slice(this.buffer.length - this.maxBufferBytes);
    return events;
  }

  reset(): void {
    this.buffer = new Uint8Array(0);
  }

  get bufferedBytes(): number {
    return this.buffer.length;
  }

  private consume(n: number): void {
    this.buffer = this.buffer.slice(n);
  }

  private next(): ParseEvent | undefined {
    const b = this.buffer;
    // Find the start code 00 FF.
    let start = -1;
    for (let i = 0; i + 1 < b.length; i++) {
      if (b[i] === 0x00 && b[i + 1] === 0xff) {
        start = i;
        break;
      }
    }
    if (start < 0) {
      // Keep a trailing 0x00: it may be the first half of a start code.
      this.consume(b.length > 0 && b[b.length - 1] === 0x00 ? b.length - 1 : b.length);
      return undefined;
    }
    if (start > 0) this.consume(start);
    const f = this.buffer;
    if (f.length < 4) return undefined;
    const lenByte = f[2]!;
    const lcsByte = f[3]!;
    // §6.2.1.3 / §6.2.1.4: ACK is 00 FF 00 FF, NACK is 00 FF FF 00.
    if (lenByte === 0x00 && lcsByte === 0xff) {
      this.consume(4);
      return { kind: 'ack' };
    }
    if (lenByte === 0xff && lcsByte === 0x00) {
      this.consume(4);
      return { kind: 'nack' };
    }
    if (lenByte === 0xff && lcsByte === 0xff) return this.nextExtended();
    if (((lenByte + lcsByte) & 0xff) !== 0) {
      // Bad LCS: a false start code inside garbage, or a corrupted length. Skip the start code.
      this.consume(2);
      return { kind: 'corrupt', reason: 'lcs' };
    }
    if (lenByte === 0) {
      this.consume(2);
      return { kind: 'corrupt', reason: 'length' };
    }
    // 00 FF LEN LCS TFI data... DCS
    const total = 4 + lenByte + 1;
    if (f.length < total) return undefined;
    return this.finishInfo(f.subarray(4, 4 + lenByte), f[4 + lenByte]!, total, false);
  }

  private nextExtended(): ParseEvent | undefined {
    const f = this.buffer;
    // 00 FF FF FF LENM LENL LCS TFI data... DCS
    if (f.length < 7) return undefined;
    const lenM = f[4]!;
    const lenL = f[5]!;
    const lcs = f[6]!;
    if (((lenM + lenL + lcs) & 0xff) !== 0) {
      this.consume(2);
      return { kind: 'corrupt', reason: 'lcs' };
    }
    const len = (lenM << 8) | lenL;
    if (len === 0 || len > MAX_EXTENDED_FRAME_LENGTH) {
      this.consume(2);
      return { kind: 'corrupt', reason: 'length' };
    }
    const total = 7 + len + 1;
    if (f.length < total) return undefined;
    return this.finishInfo(f.subarray(7, 7 + len), f[7 + len]!, total, true);
  }

  private finishInfo(body: Uint8Array, dcs: number, total: number, extended: boolean): ParseEvent {
    if (checksum(body) !== dcs) {
      // Skip only the start code: a false start inside garbage may hide a real frame behind it.
      const copy = body.slice();
      this.consume(2);
      return { kind: 'corrupt', reason: 'dcs', body: copy };
    }
    const tfi = body[0]!;
    const data = body.slice(1);
    this.consume(total);
    // §6.2.1.5 error frame: LEN=1, payload 0x7F (no TFI).
    if (tfi === 0x7f && data.length === 0) return { kind: 'error' };
    return { kind: 'info', tfi, data, extended };
  }
}
