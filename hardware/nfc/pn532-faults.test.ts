// Every failure of the real world, through the real driver and the real serialport binding on a pty.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeMessage } from '../../protocol/index.ts';
import { isHardwareError } from '../errors.ts';
import { Command } from '../pn532/commands.ts';
import { TFI_PN532_TO_HOST, encodeInformationFrame } from '../pn532/frame.ts';
import { Pn532Driver } from '../pn532/pn532-driver.ts';
import { CLA_ISO, Ins, WALLET_AID, encodeCommandApdu } from '../wallet-apdu/apdu.ts';
import { WalletCard } from '../wallet-apdu/wallet-card.ts';
import type { NfcSession } from './nfc-reader.ts';
import { Pn532NfcReader } from './pn532-nfc-reader.ts';
import { isSocatAvailable } from '../../simulators/pn532-emulator/pty-pair.ts';
import { startEmulatedReader, type EmulatedReader } from '../../simulators/pn532-emulator/start-emulated-reader.ts';
import { createWalletWorld, type WalletWorld } from '../../simulators/wallet/wallet-world.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('waitFor: condition not met in time');
    await sleep(10);
  }
}

describe.skipIf(!isSocatAvailable())('PN532 driver faults (socat pty + emulator)', () => {
  let emulated: EmulatedReader;
  let world: WalletWorld;
  const toClose: Array<{ close(): Promise<void> }> = [];

  beforeEach(async () => {
    emulated = await startEmulatedReader();
    world = createWalletWorld();
  });
  afterEach(async () => {
    for (const c of toClose.splice(0)) await c.close();
    await emulated.close();
  });

  async function openReader(opts: Partial<Parameters<typeof Pn532NfcReader.open>[0]> = {}): Promise<Pn532NfcReader> {
    const reader = await Pn532NfcReader.open({ path: emulated.path, pollIntervalMs: 20, reconnectIntervalMs: 50, ...opts });
    toClose.push(reader);
    return reader;
  }

  async function purchase(reader: Pn532NfcReader): Promise<string> {
    const session = await reader.waitForCard();
    try {
      const card = new WalletCard(session);
      await card.select();
      const r = await card.authorize(world.offerBytes(250));
      return r.kind === 'declined' ? `declined:${r.code}` : r.kind;
    } finally {
      await session.release();
    }
  }

  it('wakes the PN532 over HSU and reads its firmware version', async () => {
    const driver = new Pn532Driver({ path: emulated.path });
    toClose.push(driver);
    await driver.open();
    expect(await driver.getFirmwareVersion()).toEqual({ ic: 0x32, version: 1, revision: 6, support: 7 });
  });

  it('resynchronizes on garbage before every response', async () => {
    const reader = await openReader();
    emulated.emulator.faults.garbageBeforeResponses = 23;
    emulated.emulator.present(world.newWallet());
    expect(await purchase(reader)).toBe('authorized');
  });

  it('reassembles responses that arrive in small partial chunks', async () => {
    const reader = await openReader();
    emulated.emulator.faults.splitResponses = true;
    emulated.emulator.present(world.newWallet());
    expect(await purchase(reader)).toBe('authorized');
  });

  it('NACKs a corrupted response and gets it again', async () => {
    const reader = await openReader();
    emulated.emulator.present(world.newWallet());
    const session = await reader.waitForCard();
    emulated.emulator.faults.corruptResponses = 2;
    const card = new WalletCard(session);
    expect(await card.select()).toEqual({ appletVersion: 2 });
    expect(emulated.emulator.stats.nacksReceived).toBe(2);
    await session.release();
  });

  /** A wallet that puts `noise` on the line while it processes its `nth` APDU (the ACK has gone). */
  function noisyWallet(nth: number, noise: Uint8Array): ReturnType<WalletWorld['newWallet']> {
    const wallet = world.newWallet();
    const original = wallet.processApdu.bind(wallet);
    let apdus = 0;
    wallet.processApdu = async (apdu) => {
      if (++apdus === nth) {
        await emulated.emulator.injectRaw(noise);
        await sleep(20); // the host has read the noise before the real answer starts
      }
      return original(apdu);
    };
    return wallet;
  }

  // 00 FF LEN 03 LCS FD, D5 41 00 (InDataExchange answer, status 00), bad DCS EE: looks like our answer.
  const PLAUSIBLE_NOISE = Uint8Array.of(0x00, 0xff, 0x03, 0xfd, 0xd5, 0x41, 0x00, 0xee, 0x00);
  // Same, but not an InDataExchange answer (code 0x99): plain garbage.
  const IMPLAUSIBLE_NOISE = Uint8Array.of(0x00, 0xff, 0x03, 0xfd, 0xd5, 0x99, 0x00, 0xee, 0x00);

  for (const [name, noise] of [['a corrupt frame that looks like the answer', PLAUSIBLE_NOISE], ['a corrupt frame that is not the answer', IMPLAUSIBLE_NOISE]] as const) {
    it(`never takes the previous APDU's answer for the current one after line noise: ${name}`, async () => {
      const reader = await openReader();
      const wallet = noisyWallet(2, noise);
      emulated.emulator.present(wallet);
      const session = await reader.waitForCard();
      const card = new WalletCard(session);
      expect(await card.select()).toEqual({ appletVersion: 2 });
      expect(await card.getLicense()).toEqual(encodeMessage(wallet.license)); // not SELECT's "02"
      expect(await card.deleteRecord(999)).toBe(false); // the line is in step for the next APDU too
      expect(session.active).toBe(true);
      if (noise === IMPLAUSIBLE_NOISE) expect(emulated.emulator.stats.nacksReceived).toBe(0);
      await session.release();
    });
  }

  it('takes no repeat of the last answer for the answer to a command the PN532 never got', async () => {
    const driver = new Pn532Driver({ path: emulated.path, ackTimeoutMs: 150 });
    toClose.push(driver);
    await driver.open();
    emulated.emulator.present(world.newWallet());
    const [target] = await driver.inListPassiveTarget();
    const select = encodeCommandApdu({ cla: CLA_ISO, ins: Ins.Select, p1: 0x04, p2: 0x00, data: WALLET_AID, le: 256 });
    const answer = await driver.inDataExchange(target!.tg, select);
    // The next APDU is lost on the line; what arrives instead is the last answer again, with no ACK.
    emulated.emulator.faults.dropCommands = 1;
    const exchanges = emulated.emulator.stats.exchanges;
    const lost = driver.inDataExchange(target!.tg, select).catch((e: unknown) => e);
    await emulated.emulator.injectRaw(encodeInformationFrame(TFI_PN532_TO_HOST, Uint8Array.from([Command.InDataExchange + 1, ...answer])));
    expect(isHardwareError(await lost, 'NFC_ACK_TIMEOUT')).toBe(true);
    expect(emulated.emulator.stats.exchanges).toBe(exchanges);
  });

  it('fails with NFC_FRAME_INVALID when every retransmission is corrupted too', async () => {
    const reader = await openReader({ nackRetries: 2 });
    emulated.emulator.present(world.newWallet());
    const session = await reader.waitForCard();
    emulated.emulator.faults.corruptResponses = 10;
    const err = await new WalletCard(session).select().catch((e: unknown) => e);
    expect(isHardwareError(err, 'NFC_FRAME_INVALID')).toBe(true);
    expect(session.active).toBe(false);
  });

  it('retries an idempotent command whose ACK never came, within the bound', async () => {
    const driver = new Pn532Driver({ path: emulated.path, commandRetries: 3, ackTimeoutMs: 60 });
    toClose.push(driver);
    await driver.open();
    emulated.emulator.faults.dropCommands = 2;
    expect((await driver.getFirmwareVersion()).ic).toBe(0x32);
  });

  it('gives up with NFC_ACK_TIMEOUT after the bounded retries, then recovers on its own', async () => {
    const driver = new Pn532Driver({ path: emulated.path, commandRetries: 2, ackTimeoutMs: 150, reconnectIntervalMs: 50 });
    toClose.push(driver);
    await driver.open();
    emulated.emulator.faults.dropCommands = 3;
    const err = await driver.getFirmwareVersion().catch((e: unknown) => e);
    expect(isHardwareError(err, 'NFC_ACK_TIMEOUT')).toBe(true);
    expect(driver.connected).toBe(false); // a silent adapter is reopened like an unplugged one
    await waitFor(() => driver.connected);
    expect((await driver.getFirmwareVersion()).ic).toBe(0x32);
  });

  it('accepts the answer when only the ACK was lost, so the APDU runs once', async () => {
    const reader = await openReader({ ackTimeoutMs: 150 });
    const wallet = world.newWallet();
    let apdus = 0;
    const original = wallet.processApdu.bind(wallet);
    wallet.processApdu = (apdu) => {
      apdus++;
      return original(apdu);
    };
    emulated.emulator.present(wallet);
    const session = await reader.waitForCard();
    emulated.emulator.faults.dropNextAck = true;
    expect(await new WalletCard(session).select()).toEqual({ appletVersion: 2 });
    expect(apdus).toBe(1);
    await session.release();
  });

  it('never resends an InDataExchange: a lost APDU frame fails the tap with NFC_ACK_TIMEOUT, and the next tap works', async () => {
    const reader = await openReader();
    const wallet = world.newWallet();
    emulated.emulator.present(wallet);
    const session = await reader.waitForCard();
    const card = new WalletCard(session);
    await card.select();
    emulated.emulator.faults.dropCommands = 1;
    const err = await card.authorize(world.offerBytes(100)).catch((e: unknown) => e);
    expect(isHardwareError(err, 'NFC_ACK_TIMEOUT')).toBe(true);
    expect(session.active).toBe(false);
    expect(wallet.signed).toHaveLength(0);
    expect(await purchase(reader)).toBe('authorized'); // card still in the field: a fresh session
  });

  it('reports NFC_CARD_REMOVED when the card leaves after signing but before the answer returns', async () => {
    const reader = await openReader();
    const wallet = world.newWallet();
    emulated.emulator.present(wallet);
    const session = await reader.waitForCard();
    const card = new WalletCard(session);
    await card.select();
    emulated.emulator.faults.pullAfterNextExchange = true;
    const err = await card.getLicense().catch((e: unknown) => e);
    expect(isHardwareError(err, 'NFC_CARD_REMOVED')).toBe(true);
    await session.release();
  });

  it('never returns part of a chained answer when the card leaves during GET RESPONSE', async () => {
    const reader = await openReader();
    const wallet = world.newWallet();
    emulated.emulator.present(wallet);
    const session = await reader.waitForCard();
    const card = new WalletCard(session);
    await card.select();
    await card.storeRecord('Ticket', new Uint8Array(900).fill(7));
    let transmits = 0;
    const original = session.transmit.bind(session);
    session.transmit = async (apdu) => {
      if (++transmits === 3) emulated.emulator.faults.pullOnNextExchange = true;
      return original(apdu);
    };
    const err = await card.readRecords().catch((e: unknown) => e);
    expect(isHardwareError(err, 'NFC_CARD_REMOVED')).toBe(true);
    expect(transmits).toBe(3);
  });

  /** Count InListPassiveTarget polls as they finish, and those that failed (the real command still runs). */
  function countPolls(reader: Pn532NfcReader): { polls: number; failures: number; empty: number } {
    const counts = { polls: 0, failures: 0, empty: 0 };
    const original = reader.driver.inListPassiveTarget.bind(reader.driver);
    reader.driver.inListPassiveTarget = async () => {
      try {
        const targets = await original();
        if (targets.length === 0) counts.empty++;
        return targets;
      } catch (err) {
        counts.failures++;
        throw err;
      } finally {
        counts.polls++;
      }
    };
    return counts;
  }

  it('a failed poll is not an empty field: a card resting on the reader gets no second session', async () => {
    const reader = await openReader();
    const wallet = world.newWallet();
    emulated.emulator.present(wallet);
    const first = await reader.waitForCard();
    await new WalletCard(first).select();
    await first.release(); // the card stays on the reader
    const counts = countPolls(reader);
    const sessions: NfcSession[] = [];
    const next = reader.waitForCard().then((s) => {
      sessions.push(s);
      return s;
    });
    // Polls whose answer stays corrupted through every NACK (NFC_FRAME_INVALID). The fault may land
    // on an InRelease answer instead, so keep arming it until two polls failed.
    while (counts.failures < 2 && sessions.length === 0) {
      if (emulated.emulator.faults.corruptResponses === 0) emulated.emulator.faults.corruptResponses = 4;
      await sleep(5);
    }
    emulated.emulator.faults.corruptResponses = 0;
    const polled = counts.polls;
    await waitFor(() => counts.polls >= polled + 3 || sessions.length > 0); // clean polls that see the resting card
    expect(sessions).toHaveLength(0);

    // Taken away and tapped again: exactly one new session.
    emulated.emulator.remove();
    const empty = counts.empty;
    await waitFor(() => counts.empty > empty);
    emulated.emulator.present(wallet);
    const second = await next;
    expect(sessions).toEqual([second]);
    expect(second.uid).toEqual(wallet.uid);
    await second.release();
  });

  it('reconnects by itself after the USB adapter is unplugged and plugged back', async () => {
    const reader = await openReader();
    const wallet = world.newWallet();
    let disconnects = 0;
    reader.driver.on('disconnected', () => disconnects++);
    await emulated.unplug();
    await waitFor(() => !reader.driver.connected);
    await sleep(100); // a few failed reopen attempts while the adapter is away
    await emulated.plug();
    emulated.emulator.present(wallet);
    expect(await purchase(reader)).toBe('authorized');
    expect(disconnects).toBeGreaterThanOrEqual(1);
    expect(reader.driver.connected).toBe(true);
  });

  it('fails an exchange in flight with a typed error when the adapter is unplugged mid-session', async () => {
    const reader = await openReader();
    emulated.emulator.present(world.newWallet());
    const session = await reader.waitForCard();
    const card = new WalletCard(session);
    await card.select();
    await emulated.unplug();
    const err = await card.getLicense().catch((e: unknown) => e);
    expect(isHardwareError(err)).toBe(true);
    expect(session.active).toBe(false);
  });

  it('keeps waiting for a card across an unplug and resolves after the replug', async () => {
    const reader = await openReader();
    const waiting = reader.waitForCard();
    await sleep(60);
    await emulated.unplug();
    await sleep(150);
    await emulated.plug();
    emulated.emulator.present(world.newWallet());
    const session = await waiting;
    expect(session.active).toBe(true);
    await session.release();
  });
});
