// WalletCard's long answers (ISO/IEC 7816-4 §5.1.3 GET RESPONSE) against wallets that misbehave,
// on the simulated reader with a real SimulatedWallet behind a wrapper.
import { describe, expect, it } from 'vitest';
import { isHardwareError } from '../errors.ts';
import { Ins, MAX_GET_RESPONSES } from './apdu.ts';
import { WalletCard } from './wallet-card.ts';
import { SimulatedNfcReader } from '../../simulators/wallet/simulated-nfc-reader.ts';
import { createWalletWorld } from '../../simulators/wallet/wallet-world.ts';

/** A wallet that answers every GET RESPONSE with `answer` (the applet answers everything else). */
async function cardAnsweringGetResponse(answer: Uint8Array): Promise<{ card: WalletCard; getResponses: () => number }> {
  const wallet = createWalletWorld().newWallet();
  const original = wallet.processApdu.bind(wallet);
  let getResponses = 0;
  wallet.processApdu = async (apdu) => {
    if (apdu[1] !== Ins.GetResponse) return original(apdu);
    getResponses++;
    await new Promise((r) => setImmediate(r)); // a radio round trip: let timers run
    return answer;
  };
  const reader = new SimulatedNfcReader();
  reader.tap(wallet);
  const card = new WalletCard(await reader.waitForCard());
  await card.select();
  return { card, getResponses: () => getResponses };
}

describe('WalletCard GET RESPONSE loop', () => {
  it('fails with WALLET_RESPONSE_INVALID when a GET RESPONSE brings no data but says more remain (61 01)', async () => {
    const { card, getResponses } = await cardAnsweringGetResponse(Uint8Array.of(0x61, 0x01));
    const err = await card.getLicense().catch((e: unknown) => e);
    expect(isHardwareError(err, 'WALLET_RESPONSE_INVALID')).toBe(true);
    expect(getResponses()).toBe(1);
  });

  it(`fails with WALLET_RESPONSE_TOO_LONG after ${MAX_GET_RESPONSES} GET RESPONSEs of a trickling wallet`, async () => {
    const { card, getResponses } = await cardAnsweringGetResponse(Uint8Array.of(0x2a, 0x61, 0x01)); // 1 byte, "1 more"
    const err = await card.getLicense().catch((e: unknown) => e);
    expect(isHardwareError(err, 'WALLET_RESPONSE_TOO_LONG')).toBe(true);
    expect(getResponses()).toBe(MAX_GET_RESPONSES);
  });
});

describe('WalletCard session expiry', () => {
  it('refuses every APDU with NFC_SESSION_EXPIRED once its signal aborts (a wallet cannot hold the reader past its session)', async () => {
    const reader = new SimulatedNfcReader();
    reader.tap(createWalletWorld().newWallet());
    const expiry = new AbortController();
    const card = new WalletCard(await reader.waitForCard(), { signal: expiry.signal });
    expect((await card.select()).appletVersion).toBeGreaterThan(0);
    expiry.abort();
    expect(isHardwareError(await card.getLicense().catch((e: unknown) => e), 'NFC_SESSION_EXPIRED')).toBe(true);
  });
});
