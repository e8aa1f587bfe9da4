// Benchmark group `nfc`: tap to wallet signature through the real PN532 driver, the real
// serialport binding (115200 baud, paced by the emulator like a UART) and the PN532 emulator
// (106 kbps ISO 14443-A air time).
//   nfc.tap_to_signature_p50_ms / _p99_ms: card present → signature, compact form (POS offer with
//     the terminal certificate): SELECT + AUTHORIZE.
//   nfc.tap_to_signature_json_p50_ms / _p99_ms: the same in the JSON form (applet version 1 hosts).
//   nfc.gate_exit_exchange_p50_ms / _p99_ms: card present → a gate exit's whole exchange: SELECT,
//     TAP INFO (license + admission record + balance statement, compact), AUTHORIZE SHORT of a
//     `fare` offer without certificate that deletes the admission record in the same step.
//   nfc.gate_exit_exchange_separate_p50_ms: the same with GET LICENSE, READ RECORDS, a full
//     AUTHORIZE and DELETE RECORD as separate commands (compact), for comparison.
//   nfc.gate_exit_admission_only_*: license cached by UID and no statement read (TAP INFO of the
//     admission record only), then AUTHORIZE SHORT with delete.
//   *_424kbps_*: the same after InPSL to 424 kbps (UART still 115200).
// BENCH_NFC_POLL_MS sets the reader's poll interval (default: the reader's default).
import { pathToFileURL } from 'node:url';
import { isHardwareError } from '../hardware/errors.ts';
import { Pn532NfcReader } from '../hardware/nfc/pn532-nfc-reader.ts';
import type { NfcSession } from '../hardware/nfc/nfc-reader.ts';
import { WalletCard } from '../hardware/wallet-apdu/wallet-card.ts';
import { createOffer, decodeAnyForm, encodeCompact, encodeMessage, generateKeyPair, newChallenge, signMessage, toHex } from '../protocol/index.ts';
import { isSocatAvailable } from '../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader, type EmulatedReader } from '../simulators/pn532-emulator/start-emulated-reader.ts';
import type { SimulatedWallet } from '../simulators/wallet/simulated-wallet.ts';
import { createWalletWorld } from '../simulators/wallet/wallet-world.ts';

const TAPS = Number(process.env.BENCH_NFC_TAPS ?? 120);
const POLL_MS = process.env.BENCH_NFC_POLL_MS === undefined ? undefined : Number(process.env.BENCH_NFC_POLL_MS);

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

type Report = (name: string, value: number, unit: string) => void;
type Tap = (card: WalletCard, wallet: SimulatedWallet, i: number) => Promise<boolean>;

/** `taps` taps at a random phase of the poll loop; each returns whether it succeeded. */
async function measure(emulated: EmulatedReader, reader: Pn532NfcReader, wallets: readonly SimulatedWallet[], taps: number, tap: Tap): Promise<{ samples: number[]; failures: number }> {
  const samples: number[] = [];
  let failures = 0;
  for (let i = 0; i < taps; i++) {
    const wallet = wallets[i % wallets.length]!;
    const waiting = reader.waitForCard();
    await new Promise((r) => setTimeout(r, Math.random() * 20));
    const t0 = performance.now();
    emulated.emulator.present(wallet);
    const session: NfcSession = await waiting;
    try {
      const ok = await tap(new WalletCard(session), wallet, i);
      if (ok) samples.push(performance.now() - t0);
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
  return { samples: samples.sort((a, b) => a - b), failures };
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

export async function run(report: Report): Promise<void> {
  if (!isSocatAvailable()) {
    console.warn('bench nfc: socat not found, skipped');
    return;
  }
  const emulated = await startEmulatedReader({ lineRateBaud: 115_200 });
  const open = (bitRateKbps: 106 | 424) =>
    Pn532NfcReader.open({ path: emulated.path, baudRate: 115_200, bitRateKbps, ...(POLL_MS !== undefined ? { pollIntervalMs: POLL_MS } : {}) });
  let reader = await open(106);
  try {
    const world = createWalletWorld();
    const wallets = Array.from({ length: 8 }, () => world.newWallet());
    const posOffer = (i: number) =>
      createOffer(world.terminal, {
        terminalId: 'pos-1', merchantId: 'canteen', purpose: 'purchase', amountMinor: 100 + i, currency: 'EUR',
        lines: [{ sku: 'coffee', qty: 1, unitMinor: 100 + i }], nowMs: Date.now(), terminalCert: world.terminalCert,
      });
    let failures = 0;

    const json = await measure(emulated, reader, wallets, TAPS, async (card, _w, i) => {
      await card.select();
      return (await card.authorize(encodeMessage(posOffer(i)))).kind === 'authorized';
    });
    const compact = await measure(emulated, reader, wallets, TAPS, async (card, _w, i) => {
      await card.select();
      return (await card.authorize(encodeCompact(posOffer(i)))).kind === 'authorized';
    });
    failures += json.failures + compact.failures;
    report('nfc.tap_to_signature_p50_ms', round(percentile(compact.samples, 50)), 'ms');
    report('nfc.tap_to_signature_p99_ms', round(percentile(compact.samples, 99)), 'ms');
    report('nfc.tap_to_signature_json_p50_ms', round(percentile(json.samples, 50)), 'ms');
    report('nfc.tap_to_signature_json_p99_ms', round(percentile(json.samples, 99)), 'ms');
    report('nfc.offer_bytes', encodeCompact(posOffer(0)).length, 'bytes');
    report('nfc.offer_json_bytes', encodeMessage(posOffer(0)).length, 'bytes');

    // Gate exit: each wallet carries an entry gate's admission record and a hub balance statement.
    const entryGate = generateKeyPair();
    const gateOffer = (_i: number) =>
      encodeCompact(createOffer(world.terminal, { terminalId: 'gate-south', merchantId: 'transit', purpose: 'fare', amountMinor: 250, currency: 'EUR', lines: [], nowMs: Date.now() }));
    const walletKey = (licenseBytes: Uint8Array): string => {
      const license = decodeAnyForm(licenseBytes, 'wallet.license');
      if (!license.ok) throw new Error(`bench nfc: license does not decode: ${license.code}`);
      return license.value.body.wallet;
    };
    const board = (wallet: SimulatedWallet): void => {
      const admission = signMessage('gate.admission', { recordId: newChallenge(), wallet: wallet.publicKeyHex, terminalId: 'gate-north', station: 'north', time: Date.now() }, entryGate.secretKey);
      wallet.applet.records.store(0x01, encodeCompact(admission), true);
    };
    for (const wallet of wallets) {
      const statement = signMessage('balance.statement', {
        wallet: wallet.publicKeyHex, balanceMinor: 12_345, currency: 'EUR', asOf: Date.now(), hubKey: toHex(world.hub.publicKey),
        entries: Array.from({ length: 3 }, (_, k) => ({ requestId: newChallenge(), kind: 'fare', amountMinor: -250, time: Date.now() - k * 3600_000, counterparty: 'transit' })),
      }, world.hub.secretKey);
      wallet.applet.records.store(0x03, encodeMessage(statement), true); // stored as JSON: the wallet converts on a compact read
    }
    const gateLean = async (card: WalletCard, wallet: SimulatedWallet, i: number): Promise<boolean> => {
      // License cached by the gate (by UID), statement not needed by the decision: the admission record only.
      board(wallet);
      await card.select();
      const info = await card.tapInfo({ license: false, kinds: ['Admission'], compact: true });
      const admission = info.records.find((r) => r.kind === 'Admission');
      if (admission === undefined) return false;
      return (await card.authorize(gateOffer(i), { deleteRecordId: admission.id, walletKeyHex: wallet.publicKeyHex })).kind === 'authorized';
    };
    const gate = await measure(emulated, reader, wallets, TAPS, async (card, wallet, i) => {
      board(wallet);
      await card.select();
      const info = await card.tapInfo({ license: true, kinds: ['Admission', 'BalanceStatement'], compact: true });
      const admission = info.records.find((r) => r.kind === 'Admission');
      if (info.license === undefined || admission === undefined || !info.records.some((r) => r.kind === 'BalanceStatement')) return false;
      return (await card.authorize(gateOffer(i), { deleteRecordId: admission.id, walletKeyHex: walletKey(info.license) })).kind === 'authorized';
    });
    const separate = await measure(emulated, reader, wallets, TAPS, async (card, wallet, i) => {
      board(wallet);
      await card.select();
      await card.getLicense({ compact: true });
      const records = await card.readRecords(undefined, { compact: true });
      const admission = records.find((r) => r.kind === 'Admission');
      if (admission === undefined) return false;
      const ok = (await card.authorize(gateOffer(i))).kind === 'authorized';
      return ok && (await card.deleteRecord(admission.id));
    });
    const lean = await measure(emulated, reader, wallets, TAPS, gateLean);
    failures += gate.failures + separate.failures + lean.failures;
    report('nfc.gate_exit_exchange_p50_ms', round(percentile(gate.samples, 50)), 'ms');
    report('nfc.gate_exit_exchange_p99_ms', round(percentile(gate.samples, 99)), 'ms');
    report('nfc.gate_exit_exchange_separate_p50_ms', round(percentile(separate.samples, 50)), 'ms');
    report('nfc.gate_exit_exchange_separate_p99_ms', round(percentile(separate.samples, 99)), 'ms');
    report('nfc.gate_exit_admission_only_p50_ms', round(percentile(lean.samples, 50)), 'ms');
    report('nfc.gate_exit_admission_only_p99_ms', round(percentile(lean.samples, 99)), 'ms');
    report('nfc.gate_offer_bytes', gateOffer(0).length, 'bytes');

    // The same with InPSL to 424 kbps after activation (UM0701-02 §7.3.10); the UART stays at 115200.
    await reader.close();
    reader = await open(424);
    const compactFast = await measure(emulated, reader, wallets, TAPS, async (card, _w, i) => {
      await card.select();
      return (await card.authorize(encodeCompact(posOffer(i)))).kind === 'authorized';
    });
    const gateFast = await measure(emulated, reader, wallets, TAPS, async (card, wallet, i) => {
      board(wallet);
      await card.select();
      const info = await card.tapInfo({ license: true, kinds: ['Admission', 'BalanceStatement'], compact: true });
      const admission = info.records.find((r) => r.kind === 'Admission');
      if (info.license === undefined || admission === undefined) return false;
      return (await card.authorize(gateOffer(i), { deleteRecordId: admission.id, walletKeyHex: walletKey(info.license) })).kind === 'authorized';
    });
    const gateFastLean = await measure(emulated, reader, wallets, TAPS, gateLean);
    failures += compactFast.failures + gateFast.failures + gateFastLean.failures;
    report('nfc.tap_to_signature_424kbps_p50_ms', round(percentile(compactFast.samples, 50)), 'ms');
    report('nfc.tap_to_signature_424kbps_p99_ms', round(percentile(compactFast.samples, 99)), 'ms');
    report('nfc.gate_exit_exchange_424kbps_p50_ms', round(percentile(gateFast.samples, 50)), 'ms');
    report('nfc.gate_exit_exchange_424kbps_p99_ms', round(percentile(gateFast.samples, 99)), 'ms');
    report('nfc.gate_exit_admission_only_424kbps_p50_ms', round(percentile(gateFastLean.samples, 50)), 'ms');
    report('nfc.gate_exit_admission_only_424kbps_p99_ms', round(percentile(gateFastLean.samples, 99)), 'ms');
    report('nfc.tap_failures', failures, 'count');
  } finally {
    await reader.close();
    await emulated.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t = performance.now();
  await run((name, value, unit) => console.log(`${name} ${value} ${unit}`));
  console.log(`(${TAPS} taps per scenario in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
}
