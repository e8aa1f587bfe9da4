// Benchmark group `nfc`: tap to wallet signature through the real PN532 driver, the real
// serialport binding (115200 baud, paced by the emulator like a UART) and the PN532 emulator.
import { pathToFileURL } from 'node:url';
import { isHardwareError } from '../hardware/errors.ts';
import { Pn532NfcReader } from '../hardware/nfc/pn532-nfc-reader.ts';
import { WalletCard } from '../hardware/wallet-apdu/wallet-card.ts';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader } from '../simulators/pn532-emulator/start-emulated-reader.ts';
import { createWalletWorld } from '../simulators/wallet/wallet-world.ts';

const TAPS = Number(process.env.BENCH_NFC_TAPS ?? 120);

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export async function run(report: (name: string, value: number, unit: string) => void): Promise<void> {
  if (!isSocatAvailable()) {
    console.warn('bench nfc: socat not found, skipped');
    return;
  }
  const emulated = await startEmulatedReader({ lineRateBaud: 115_200 });
  const reader = await Pn532NfcReader.open({ path: emulated.path, baudRate: 115_200 });
  try {
    const world = createWalletWorld();
    const wallets = Array.from({ length: 8 }, () => world.newWallet());
    const offers = Array.from({ length: TAPS }, (_, i) => world.offerBytes(100 + i, [{ sku: 'coffee', qty: 1, unitMinor: 100 + i }]));
    const samples: number[] = [];
    let failures = 0;
    for (let i = 0; i < TAPS; i++) {
      const waiting = reader.waitForCard();
      // Tap at a random phase of the polling loop, as a customer would.
      await new Promise((r) => setTimeout(r, Math.random() * 20));
      const t0 = performance.now();
      emulated.emulator.present(wallets[i % wallets.length]!);
      const session = await waiting;
      try {
        const card = new WalletCard(session);
        await card.select();
        const result = await card.authorize(offers[i]!);
        const t1 = performance.now();
        if (result.kind === 'authorized') samples.push(t1 - t0);
        else failures++;
      } catch (err) {
        // A failed tap (e.g. a false ACK timeout on an overloaded machine) is counted, not fatal.
        if (!isHardwareError(err)) throw err;
        failures++;
      } finally {
        await session.release();
        emulated.emulator.remove();
      }
    }
    if (samples.length === 0) throw new Error('bench nfc: no tap succeeded');
    samples.sort((a, b) => a - b);
    report('nfc.tap_to_signature_p50_ms', Math.round(percentile(samples, 50) * 10) / 10, 'ms');
    report('nfc.tap_to_signature_p99_ms', Math.round(percentile(samples, 99) * 10) / 10, 'ms');
    report('nfc.offer_bytes', offers[0]!.length, 'bytes');
    report('nfc.tap_failures', failures, 'count');
  } finally {
    await reader.close();
    await emulated.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t = performance.now();
  await run((name, value, unit) => console.log(`${name} ${value} ${unit}`));
  console.log(`(${TAPS} taps in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
}
