import { afterEach, describe, expect, it } from 'vitest';
import { isHardwareError } from '../errors.ts';
import { describeNfcReaderContract } from './nfc-reader.contract.ts';
import { Pn532NfcReader } from './pn532-nfc-reader.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader, type EmulatedReader } from '../../simulators/pn532-emulator/start-emulated-reader.ts';
import { createWalletWorld } from '../../simulators/wallet/wallet-world.ts';

const noSocat = !isSocatAvailable();
if (noSocat) console.warn('socat not found: PN532 tests over a pseudo-terminal are skipped (apt-get install socat)');

describeNfcReaderContract(
  'Pn532NfcReader through the emulator on a pty',
  async () => {
    const emulated = await startEmulatedReader();
    const reader = await Pn532NfcReader.open({ path: emulated.path, pollIntervalMs: 20 });
    return {
      reader,
      tap: (card) => emulated.emulator.present(card),
      remove: () => emulated.emulator.remove(),
      pullOnNextTransmit: () => {
        emulated.emulator.faults.pullOnNextExchange = true;
      },
      close: async () => {
        await reader.close();
        await emulated.close();
      },
    };
  },
  { skip: noSocat },
);

describe.skipIf(noSocat)('Pn532NfcReader sessions', () => {
  let emulated: EmulatedReader | undefined;
  let reader: Pn532NfcReader | undefined;
  afterEach(async () => {
    await reader?.close();
    await emulated?.close();
  });

  it('rejects waitForCard with NFC_SESSION_ACTIVE while the previous session is not released', async () => {
    emulated = await startEmulatedReader();
    reader = await Pn532NfcReader.open({ path: emulated.path, pollIntervalMs: 20 });
    emulated.emulator.present(createWalletWorld().newWallet());
    const session = await reader.waitForCard();
    expect(isHardwareError(await reader.waitForCard().catch((e: unknown) => e), 'NFC_SESSION_ACTIVE')).toBe(true);
    await session.release();
  });
});
