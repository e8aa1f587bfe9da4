import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ACK_FRAME, ERROR_FRAME, FrameParser, NACK_FRAME, checksum, encodeInformationFrame, TFI_HOST_TO_PN532, TFI_PN532_TO_HOST } from './frame.ts';
import { encodeInListPassiveTargetResponse, parseInListPassiveTarget } from './commands.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.split(/\s+/).filter(Boolean).map((b) => parseInt(b, 16)));

describe('PN532 frame codec (UM0701-02 §6.2.1)', () => {
  it('encodes GetFirmwareVersion exactly as the manual shows', () => {
    // UM0701-02 §7.2.2 example: 00 00 FF 02 FE D4 02 2A 00
    expect(encodeInformationFrame(TFI_HOST_TO_PN532, Uint8Array.of(0x02))).toEqual(hex('00 00 FF 02 FE D4 02 2A 00'));
  });

  it('encodes SAMConfiguration normal mode like libnfc', () => {
    expect(encodeInformationFrame(TFI_HOST_TO_PN532, Uint8Array.of(0x14, 0x01, 0x14, 0x01))).toEqual(hex('00 00 FF 05 FB D4 14 01 14 01 02 00'));
  });

  it('computes checksums so that the sum is zero mod 256', () => {
    expect(checksum([0xd4, 0x02])).toBe(0x2a);
    expect(checksum([])).toBe(0);
  });

  it('decodes ACK, NACK and the error frame', () => {
    const p = new FrameParser();
    expect(p.push(ACK_FRAME)).toEqual([{ kind: 'ack' }]);
    expect(p.push(NACK_FRAME)).toEqual([{ kind: 'nack' }]);
    expect(p.push(ERROR_FRAME)).toEqual([{ kind: 'error' }]);
  });

  it('uses an extended frame above 255 bytes and decodes it back', () => {
    const data = new Uint8Array(262).map((_, i) => i & 0xff);
    const frame = encodeInformationFrame(TFI_PN532_TO_HOST, data);
    expect(Array.from(frame.subarray(0, 5))).toEqual([0x00, 0x00, 0xff, 0xff, 0xff]);
    expect(frame[5]! + frame[6]! + frame[7]!).toBe(0x100 * Math.ceil((frame[5]! + frame[6]!) / 0x100));
    expect(new FrameParser().push(frame)).toEqual([{ kind: 'info', tfi: 0xd5, data, extended: true }]);
  });

  it('rejects a frame that would exceed the extended limit', () => {
    expect(() => encodeInformationFrame(TFI_HOST_TO_PN532, new Uint8Array(265))).toThrow(RangeError);
  });

  it('waits for partial frames and resynchronizes after garbage', () => {
    const p = new FrameParser();
    const frame = encodeInformationFrame(TFI_PN532_TO_HOST, Uint8Array.of(0x03, 0x32, 0x01, 0x06, 0x07));
    expect(p.push(hex('13 37 FF 00'))).toEqual([]);
    expect(p.push(frame.subarray(0, 5))).toEqual([]);
    const events = p.push(frame.subarray(5));
    expect(events).toEqual([{ kind: 'info', tfi: 0xd5, data: Uint8Array.of(0x03, 0x32, 0x01, 0x06, 0x07), extended: false }]);
  });

  it('reports a bad DCS as corrupt and still finds the next good frame', () => {
    const p = new FrameParser();
    const bad = encodeInformationFrame(TFI_PN532_TO_HOST, Uint8Array.of(0x41, 0x00, 0x90, 0x00));
    bad[bad.length - 2] = bad[bad.length - 2]! ^ 0xff;
    const events = p.push(Uint8Array.from([...bad, ...ACK_FRAME]));
    expect(events[0]).toEqual({ kind: 'corrupt', reason: 'dcs', body: Uint8Array.of(0xd5, 0x41, 0x00, 0x90, 0x00) });
    expect(events.at(-1)).toEqual({ kind: 'ack' });
  });

  it('finds a real frame hidden behind a false start code with a valid-looking length', () => {
    const p = new FrameParser();
    const good = encodeInformationFrame(TFI_PN532_TO_HOST, Uint8Array.of(0x53, 0x00));
    // 00 FF 10 F0 claims 16 bytes and swallows the real frame; the DCS then fails.
    const events = p.push(Uint8Array.from([0x00, 0xff, 0x10, 0xf0, ...good, ...new Uint8Array(16)]));
    expect(events).toContainEqual({ kind: 'info', tfi: 0xd5, data: Uint8Array.of(0x53, 0x00), extended: false });
  });

  it('bounds the buffer under endless garbage', () => {
    const p = new FrameParser(64);
    p.push(new Uint8Array(1000).fill(0x00).map((_, i) => (i % 2 === 0 ? 0x00 : 0x01)));
    expect(p.bufferedBytes).toBeLessThanOrEqual(64);
  });

  it('round-trips any payload split at any point, with garbage in front (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 264 }),
        fc.uint8Array({ maxLength: 40 }).map((g) => g.map((b) => (b === 0x00 ? 0x11 : b))),
        fc.nat(),
        (data, garbage, cut) => {
          const frame = encodeInformationFrame(TFI_PN532_TO_HOST, data);
          const stream = Uint8Array.from([...garbage, ...frame]);
          const at = cut % (stream.length + 1);
          const p = new FrameParser();
          const events = [...p.push(stream.subarray(0, at)), ...p.push(stream.subarray(at))];
          const infos = events.filter((e) => e.kind === 'info');
          expect(infos).toHaveLength(1);
          expect(infos[0]).toMatchObject({ tfi: 0xd5, data });
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('InListPassiveTarget payload (UM0701-02 §7.3.5)', () => {
  it('round-trips an ISO 14443-4 target with ATS', () => {
    const target = { tg: 1, sensRes: 0x0044, selRes: 0x20, uid: hex('04 A1 B2 C3 D4 E5 F6'), ats: hex('05 75 77 81 02') };
    expect(parseInListPassiveTarget(encodeInListPassiveTargetResponse([target]))).toEqual([target]);
    expect(parseInListPassiveTarget(Uint8Array.of(0))).toEqual([]);
  });
});
