import { describeNfcReaderContract } from '../../hardware/nfc/nfc-reader.contract.ts';
import { SimulatedNfcReader } from './simulated-nfc-reader.ts';

describeNfcReaderContract('SimulatedNfcReader', async () => {
  const reader = new SimulatedNfcReader();
  return {
    reader,
    tap: (card) => reader.tap(card),
    remove: () => reader.remove(),
    pullOnNextTransmit: () => {
      reader.pullOnNextTransmit = true;
    },
    close: () => reader.close(),
  };
});
