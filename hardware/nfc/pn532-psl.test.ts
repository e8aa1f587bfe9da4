// InPSL (UM0701-02 §7.3.10) through the real driver and serialport on a pty: the reader raises
// the ISO/IEC 14443-4 bit rate after activation when the card's ATS offers it.
import { afterEach, describe, expect, it } from 'vitest';
import { isHardwareError } from '../errors.ts';
import { atsSupportsBitRate, BitRateCode } from '../pn532/commands.ts';
import { WalletCard } from '../wallet-apdu/wallet-card.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader, type EmulatedReader } from '../../simulators/pn532-emulator/start-emulated-reader.ts';
import { createWalletWorld } from '../../simulators/wallet/wallet-world.ts';
import { Pn532NfcReader } from './pn532-nfc-reader.ts';

describe('ATS TA(1) bit rates (ISO/IEC 14443-4 §5.2.4)', () => {
  it('reads DS/DR divisors and refuses without TA(1)', () => {
    expect(atsSupportsBitRate(Uint8Array.of(0x05, 0x75, 0x77, 0x81, 0x02), BitRateCode.Kbps424)).toBe(true);
    expect(atsSupportsBitRate(Uint8Array.of(0x05, 0x75, 0x11, 0x81, 0x02), BitRateCode.Kbps424)).toBe(false);
    expect(atsSupportsBitRate(Uint8Array.of(0x05, 0x75, 0x11, 0x81, 0x02), BitRateCode.Kbps212)).toBe(true);
    expect(atsSupportsBitRate(Uint8Array.of(0x03, 0x65, 0x81, 0x02), BitRateCode.Kbps212)).toBe(false); // T0 without TA
    expect(atsSupportsBitRate(new Uint8Array(0), BitRateCode.Kbps106)).toBe(true);
  });
});

describe.skipIf(!isSocatAvailable())('InPSL through Pn532NfcReader on the emulator', () => {
  let emulated: EmulatedReader | undefined;
  let reader: Pn532NfcReader | undefined;
  afterEach(async () => {
    await reader?.close();
    await emulated?.close();
  });

  it('a waiter aborted during InPSL gets no session; the card is deselected and the next waitForCard gets it', async () => {
    emulated = await startEmulatedReader();
    reader = await Pn532NfcReader.open({ path: emulated.path, bitRateKbps: 424 });
    const ac = new AbortController();
    const driver = reader.driver;
    const inPsl = driver.inPsl.bind(driver);
    let psls = 0;
    let firstPslDone: () => void;
    const firstPsl = new Promise<void>((resolve) => (firstPslDone = resolve));
    driver.inPsl = async (...args) => {
      const first = ++psls === 1;
      if (first) ac.abort(new Error('terminal gave up'));
      try {
        return await inPsl(...args);
      } finally {
        if (first) setTimeout(firstPslDone, 0); // after the poll loop went on from the round trip
      }
    };
    const waiting = reader.waitForCard(ac.signal);
    const wallet = createWalletWorld().newWallet();
    emulated.emulator.present(wallet);
    await expect(waiting).rejects.toThrow('terminal gave up');
    await firstPsl; // nobody waits while the InPSL round trip ends
    // The reader is still consistent: no orphan session, and the card (never handed out) is a tap.
    const session = await reader.waitForCard();
    expect(session.uid).toEqual(wallet.uid);
    expect(await new WalletCard(session).select()).toEqual({ appletVersion: 2 });
    await session.release();
    const r = reader;
    reader = undefined;
    await r.close(); // resolves: the poll loop did not die
    expect(isHardwareError(await r.waitForCard().catch((e: unknown) => e), 'NFC_CLOSED')).toBe(true);
  });

  for (const kbps of [106, 424] as const) {
    it(`runs a whole tap at ${kbps} kbps (InPSL only when above 106)`, async () => {
      emulated = await startEmulatedReader();
      reader = await Pn532NfcReader.open({ path: emulated.path, bitRateKbps: kbps });
      const world = createWalletWorld();
      const wallet = world.newWallet();
      emulated.emulator.present(wallet);
      const session = await reader.waitForCard();
      const card = new WalletCard(session);
      await card.select();
      expect(emulated.emulator.targetBitRates).toEqual({ toCard: kbps * 1000, toReader: kbps * 1000 });
      expect(emulated.emulator.stats.pslChanges).toBe(kbps === 106 ? 0 : 1);
      const result = await card.authorize(world.offerBytes(120, [{ sku: 'tea', qty: 1, unitMinor: 120 }]));
      expect(result.kind).toBe('authorized');
      await session.release();
      emulated.emulator.remove();
    });
  }
});
