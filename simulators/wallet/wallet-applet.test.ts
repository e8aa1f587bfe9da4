import { describe, expect, it } from 'vitest';
import { WALLET_AID, encodeCommandApdu, parseResponseApdu, Sw, decodeRecordList, RecordKind } from '../../hardware/wallet-apdu/apdu.ts';
import { RecordStore } from './record-store.ts';
import { WalletApplet } from './wallet-applet.ts';

const applet = (store?: RecordStore): WalletApplet =>
  new WalletApplet({
    licenseBytes: () => new Uint8Array(450).fill(0x4c),
    authorize: (offer) => ({ kind: 'authorized', authorizationBytes: Uint8Array.from([offer.length >> 8, offer.length & 0xff]) }),
    records: store,
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
    expect(await send(a, 0x00, 0xa4, 0x04, 0x00, WALLET_AID)).toEqual({ data: Uint8Array.of(1), sw: Sw.Ok });
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
