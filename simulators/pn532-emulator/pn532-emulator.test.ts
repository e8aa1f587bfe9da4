// The emulator seen from a raw serial port: it must behave like a PN532 in HSU mode.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SerialPort } from 'serialport';
import { ACK_FRAME, FrameParser, HSU_WAKEUP_PREAMBLE, TFI_HOST_TO_PN532, encodeInformationFrame, type ParseEvent } from '../../hardware/pn532/frame.ts';
import { isSocatAvailable } from './pty-pair.ts';
import { startEmulatedReader, type EmulatedReader } from './start-emulated-reader.ts';

describe.skipIf(!isSocatAvailable())('Pn532Emulator on a raw serial port', () => {
  let emulated: EmulatedReader;
  let port: SerialPort;
  let events: ParseEvent[];

  beforeEach(async () => {
    emulated = await startEmulatedReader({ lineRateBaud: 0 });
    port = new SerialPort({ path: emulated.path, baudRate: 115_200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    const parser = new FrameParser();
    events = [];
    port.on('data', (d: Buffer) => events.push(...parser.push(new Uint8Array(d))));
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => port.close(() => resolve()));
    await emulated.close();
  });

  const send = (bytes: Uint8Array): void => {
    port.write(Buffer.from(bytes));
  };
  /** Wait until `count` frames arrived in total (bounded), then a little more for stray frames. */
  const settle = async (count?: number): Promise<void> => {
    const deadline = Date.now() + 3000;
    while (count !== undefined && events.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 40));
  };
  const cmd = (...data: number[]): Uint8Array => encodeInformationFrame(TFI_HOST_TO_PN532, Uint8Array.from(data));

  it('ignores commands until woken by the 0x55 preamble (HSU, UM0701-02 ch. 3)', async () => {
    send(cmd(0x02));
    await settle();
    expect(events).toEqual([]);
    send(Uint8Array.from([...HSU_WAKEUP_PREAMBLE, ...cmd(0x02)]));
    await settle(2);
    expect(events).toEqual([{ kind: 'ack' }, { kind: 'info', tfi: 0xd5, data: Uint8Array.of(0x03, 0x32, 0x01, 0x06, 0x07), extended: false }]);
  });

  it('answers an unknown command with the error frame and resends the last response on NACK', async () => {
    send(Uint8Array.from([...HSU_WAKEUP_PREAMBLE, ...cmd(0x14, 0x01, 0x14, 0x01)]));
    await settle(2);
    send(Uint8Array.of(0x00, 0x00, 0xff, 0xff, 0x00, 0x00));
    await settle(3);
    expect(events.filter((e) => e.kind === 'info')).toHaveLength(2);
    send(cmd(0x99));
    await settle(5);
    expect(events.at(-1)).toEqual({ kind: 'error' });
  });

  it('reports no target when the field is empty and one ISO 14443-4 target when a card is present', async () => {
    send(Uint8Array.from([...HSU_WAKEUP_PREAMBLE, ...cmd(0x32, 0x05, 0xff, 0x01, 0x01)]));
    send(cmd(0x4a, 0x01, 0x00));
    await settle(4);
    expect(events.at(-1)).toEqual({ kind: 'info', tfi: 0xd5, data: Uint8Array.of(0x4b, 0x00), extended: false });
    emulated.emulator.present({ uid: Uint8Array.of(4, 1, 2, 3, 4, 5, 6), powerOn: () => undefined, processApdu: async () => Uint8Array.of(0x90, 0x00) });
    send(cmd(0x4a, 0x01, 0x00));
    await settle(6);
    const last = events.at(-1);
    expect(last?.kind === 'info' && Array.from(last.data.subarray(0, 7))).toEqual([0x4b, 0x01, 0x01, 0x00, 0x44, 0x20, 0x07]);
    send(cmd(0x40, 0x01, 0x00, 0xa4, 0x04, 0x00));
    await settle(8);
    expect(events.at(-1)).toEqual({ kind: 'info', tfi: 0xd5, data: Uint8Array.of(0x41, 0x00, 0x90, 0x00), extended: false });
  });

  it('drops a response when the host aborts with an ACK', async () => {
    send(Uint8Array.from([...HSU_WAKEUP_PREAMBLE, ...cmd(0x32, 0x05, 0xff, 0x01, 0xff)]));
    await settle(2);
    const before = events.length;
    send(cmd(0x4a, 0x01, 0x00)); // waits forever for a card (MxRtyPassiveActivation = 0xFF)
    await settle(3);
    send(ACK_FRAME);
    await settle();
    emulated.emulator.present({ uid: Uint8Array.of(1, 2, 3, 4), powerOn: () => undefined, processApdu: async () => Uint8Array.of(0x90, 0x00) });
    await new Promise((r) => setTimeout(r, 120));
    expect(events.slice(before)).toEqual([{ kind: 'ack' }]);
  });
});
