import { describeNfcReaderContract } from './nfc-reader.contract.ts';
import { Pn532NfcReader } from './pn532-nfc-reader.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader } from '../../simulators/pn532-emulator/start-emulated-reader.ts';

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
