import { describe, expect, it } from 'vitest';
import { WALLET_AID, encodeCommandApdu, parseResponseApdu, Sw, decodeRecordList, decodeTapInfo, decodeShortAuthorization, encodeShortAuthorization, RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import { RecordStore } from './record-store.ts';
import { WalletApplet } from './wallet-applet.ts';

const applet = (store?: RecordStore): WalletApplet =>
  new WalletApplet({
    licenseBytes: () => new Uint8Array(450).fill(0x4c),
    authorize: (offer) => ({ kind: 'authorized', authorizationBytes: Uint8Array.from([offer.length >> 8, offer.length & 0xff]) }),
    records: store,
    responseChunkBytes: 200, // the version 1 chunk these tests were written for
  });

async function send(a: WalletApplet, cla: number, ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), le: number | undefined = 256) {
  const r = parseResponseApdu(await a.process(encodeCommandApdu({ cla, ins, p1, p2, data, le })));
  if (r === undefined) throw new Error('no SW');
  return r;
}

describe('wallet applet status words and framing (hardware/README.md)', () => {
  it('refuses proprietary commands before SELECT with 6985 and unknown AIDs with 6A82', async () => {
    const a = applet();
    expect((await send(a, 0x80, 0x10, 0, 0)).sw).toBe(Sw.ConditionsNotSatisfied);
    expect((await send(a, 0x00, 0xa4, 0x04, 0x00, Uint8Array.of(0xa0, 0, 0, 0, 3))).sw).toBe(Sw.FileNotFound);
    expect(await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID)).toEqual({ data: Uint8Array.of(2), sw: Sw.Ok });
  });

  it('answers 6D00, 6E00, 6700 and 6B00 for unknown INS, CLA, bad length and bad P1/P2', async () => {
    const a = applet();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    expect((await send(a, 0x80, 0x77, 0, 0)).sw).toBe(Sw.InsNotSupported);
    expect((await send(a, 0x40, 0x10, 0, 0)).sw).toBe(Sw.ClaNotSupported);
    expect(parseResponseApdu(await a.process(Uint8Array.of(0x80, 0x30, 0x02, 0x00, 0x05, 1, 2)))?.sw).toBe(Sw.WrongLength);
    expect((await send(a, 0x80, 0x30, 0x09, 0x00, Uint8Array.of(1))).sw).toBe(Sw.WrongP1P2);
  });

  it('splits a long answer into 61xx chunks read with GET RESPONSE', async () => {
    const a = applet();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    const first = await send(a, 0x80, 0x10, 0, 0);
    expect(first.data.length).toBe(200);
    expect(first.sw).toBe(0x6100 | 250);
    const second = await send(a, 0x00, 0xc0, 0, 0, new Uint8Array(0), 250);
    expect(second).toMatchObject({ sw: 0x6100 | 50 });
    expect(second.data.length).toBe(200);
    const third = await send(a, 0x00, 0xc0, 0, 0, new Uint8Array(0), 50);
    expect(third).toEqual({ data: new Uint8Array(50).fill(0x4c), sw: Sw.Ok });
    expect((await send(a, 0x00, 0xc0, 0, 0)).sw).toBe(Sw.ConditionsNotSatisfied);
  });

  it('reassembles chained commands and rejects a chain broken by another INS with 6883', async () => {
    const a = applet();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    expect((await send(a, 0x90, 0x20, 0, 0, new Uint8Array(200), undefined)).sw).toBe(Sw.Ok);
    expect(await send(a, 0x80, 0x20, 0, 0, new Uint8Array(50))).toEqual({ data: Uint8Array.of(0x00, 0x00, 250), sw: Sw.Ok });
    expect((await send(a, 0x90, 0x20, 0, 0, new Uint8Array(10), undefined)).sw).toBe(Sw.Ok);
    expect((await send(a, 0x80, 0x30, 0x01, 0, new Uint8Array(10))).sw).toBe(Sw.LastCommandOfChainExpected);
  });

  it('bounds the record store: 6A84 when full, replace keeps one slot per kind', async () => {
    const a = applet(new RecordStore({ maxRecords: 2, maxRecordBytes: 100, maxTotalBytes: 150 }));
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    expect((await send(a, 0x80, 0x30, 0x02, 0, new Uint8Array(101))).sw).toBe(Sw.WrongLength);
    expect((await send(a, 0x80, 0x30, 0x02, 0, new Uint8Array(100))).sw).toBe(Sw.Ok);
    expect((await send(a, 0x80, 0x30, 0x02, 0, new Uint8Array(60))).sw).toBe(Sw.NotEnoughMemory);
    expect((await send(a, 0x80, 0x30, 0x03, 1, new Uint8Array(40))).sw).toBe(Sw.Ok);
    expect((await send(a, 0x80, 0x30, 0x03, 1, new Uint8Array(45))).sw).toBe(Sw.Ok);
    const list = decodeRecordList((await send(a, 0x80, 0x32, 0x03, 0)).data);
    expect(list?.map((r) => [r.kind, r.bytes.length])).toEqual([[RecordKind.BalanceStatement, 45]]);
  });

  it('forgets selection and chaining when it leaves the field', async () => {
    const a = applet();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    a.reset();
    expect((await send(a, 0x80, 0x10, 0, 0)).sw).toBe(Sw.ConditionsNotSatisfied);
  });
});

describe('wallet applet version 2: compact forms, TAP INFO, AUTHORIZE with delete', () => {
  const v2 = (store?: RecordStore): WalletApplet =>
    new WalletApplet({
      licenseBytes: () => Uint8Array.of(0x7b, 0x7d),
      compactLicenseBytes: () => Uint8Array.of(0xd9, 0x01),
      compactRecord: (rec) => Uint8Array.of(0xd9, rec.id),
      authorize: (_offer, { short }) => ({ kind: 'authorized', authorizationBytes: Uint8Array.of(short ? 0xbb : 0xaa) }),
      records: store,
    });

  it('answers GET LICENSE and READ RECORDS in the compact form when P2 bit 1 is set', async () => {
    const a = v2();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    expect((await send(a, 0x80, 0x10, 0, 0)).data).toEqual(Uint8Array.of(0x7b, 0x7d));
    expect((await send(a, 0x80, 0x10, 0, 0x02)).data).toEqual(Uint8Array.of(0xd9, 0x01));
    await send(a, 0x80, 0x30, 0x01, 0, Uint8Array.of(0x7b, 0x7d));
    expect((await send(a, 0x80, 0x32, 0x01, 0x02)).data).toEqual(Uint8Array.of(0x01, 0x00, 0x01, 0x00, 0x02, 0xd9, 0x01));
    expect((await send(a, 0x80, 0x32, 0x01, 0x00)).data).toEqual(Uint8Array.of(0x01, 0x00, 0x01, 0x00, 0x02, 0x7b, 0x7d));
    expect((await send(a, 0x80, 0x32, 0x01, 0x04)).sw).toBe(Sw.WrongP1P2);
  });

  it('TAP INFO returns the license (kind 00) and the masked kinds in one answer', async () => {
    const a = v2();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    await send(a, 0x80, 0x30, 0x01, 0, Uint8Array.of(1)); // admission id 1
    await send(a, 0x80, 0x30, 0x02, 0, Uint8Array.of(2)); // ticket id 2
    await send(a, 0x80, 0x30, 0x03, 0, Uint8Array.of(3)); // statement id 3
    const r = await send(a, 0x80, 0x40, 0x05, 0x01);
    expect(r).toEqual({ data: Uint8Array.of(0, 0, 0, 0, 2, 0x7b, 0x7d, 1, 0, 1, 0, 1, 1, 3, 0, 3, 0, 1, 3), sw: Sw.Ok });
    expect(decodeTapInfo(r.data)?.records.map((x) => x.id)).toEqual([1, 3]);
    expect((await send(a, 0x80, 0x40, 0x02, 0x02)).data).toEqual(Uint8Array.of(2, 0, 2, 0, 2, 0xd9, 2));
    expect((await send(a, 0x80, 0x40, 0x08, 0x00)).sw).toBe(Sw.WrongP1P2);
    expect((await send(a, 0x80, 0x40, 0x01, 0x04)).sw).toBe(Sw.WrongP1P2);
  });

  it('AUTHORIZE with P1P2 = record id deletes that record with the signature, or declines RECORD_NOT_FOUND', async () => {
    const a = v2();
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    await send(a, 0x80, 0x30, 0x01, 0, Uint8Array.of(1));
    const missing = await send(a, 0x80, 0x20, 0x00, 0x09, Uint8Array.of(0xd9));
    expect(Buffer.from(missing.data).toString('latin1')).toBe('\x01RECORD_NOT_FOUND');
    expect(await send(a, 0x80, 0x20, 0x00, 0x01, Uint8Array.of(0xd9))).toEqual({ data: Uint8Array.of(0x00, 0xaa), sw: Sw.Ok });
    expect((await send(a, 0x80, 0x32, 0x00, 0x00)).data.length).toBe(0);
    expect(await send(a, 0x80, 0x22, 0x00, 0x00, Uint8Array.of(0xd9))).toEqual({ data: Uint8Array.of(0x00, 0xbb), sw: Sw.Ok }); // AUTHORIZE SHORT
  });

  it('encodes the AUTHORIZE SHORT answer as time, counter and signature', () => {
    const sig = new Uint8Array(64).fill(9);
    const bytes = encodeShortAuthorization({ timeMs: 1_795_456_972_061, counter: 7, signature: sig });
    expect(bytes.length).toBe(80);
    expect(Buffer.from(bytes.subarray(0, 16)).toString('hex')).toBe('000001a20993351d0000000000000007');
    expect(decodeShortAuthorization(bytes)).toEqual({ timeMs: 1_795_456_972_061, counter: 7, signature: sig });
    expect(decodeShortAuthorization(bytes.subarray(1))).toBeUndefined();
  });

  it('sends up to 256 answer bytes per APDU, bounded by Le', async () => {
    const a = new WalletApplet({ licenseBytes: () => new Uint8Array(600).fill(1), authorize: () => ({ kind: 'declined', code: 'X' }) });
    await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID);
    const first = await send(a, 0x80, 0x10, 0, 0);
    expect([first.data.length, first.sw]).toEqual([256, 0x6100 | 0]);
    const second = await send(a, 0x00, 0xc0, 0, 0, new Uint8Array(0), 100);
    expect([second.data.length, second.sw]).toEqual([100, 0x6100 | 244]);
  });
});
