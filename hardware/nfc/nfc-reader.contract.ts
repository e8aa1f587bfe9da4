// One contract for every NfcReader: the PN532 driver on the emulator and the simulated reader.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOffer, decodeAnyForm, decodeCompact, decodeMessage, checkAuthorization, encodeCompact, encodeMessage, generateKeyPair, newChallenge, signMessage, toHex } from '../../protocol/index.ts';
import { isHardwareError } from '../errors.ts';
import { WalletCard } from '../wallet-apdu/wallet-card.ts';
import type { NfcReader } from './nfc-reader.ts';
import type { ContactlessCard } from '../../simulators/wallet/contactless-card.ts';
import { createWalletWorld, type WalletWorld } from '../../simulators/wallet/wallet-world.ts';

export type NfcReaderHarness = {
  reader: NfcReader;
  tap(card: ContactlessCard): void;
  remove(): void;
  /** The card leaves the field as the next APDU is sent. */
  pullOnNextTransmit(): void;
  close(): Promise<void>;
};

export function describeNfcReaderContract(name: string, makeHarness: () => Promise<NfcReaderHarness>, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`NfcReader contract: ${name}`, () => {
    let h: NfcReaderHarness;
    let world: WalletWorld;

    beforeEach(async () => {
      h = await makeHarness();
      world = createWalletWorld();
    });
    afterEach(async () => {
      await h.close();
    });

    it('starts a session on tap and runs a full purchase authorization', async () => {
      const wallet = world.newWallet();
      const waiting = h.reader.waitForCard();
      h.tap(wallet);
      const session = await waiting;
      expect(session.uid).toEqual(wallet.uid);
      const card = new WalletCard(session);
      expect(await card.select()).toEqual({ appletVersion: 2 });
      const license = decodeMessage(await card.getLicense(), 'wallet.license');
      expect(license.ok && license.value.body.wallet).toBe(wallet.publicKeyHex);
      const offer = world.offerBytes(350, [{ sku: 'coffee', qty: 1, unitMinor: 350 }]);
      expect(offer.length).toBeGreaterThan(600); // needs command chaining
      const result = await card.authorize(offer);
      expect(result).toMatchObject({ kind: 'authorized' });
      if (result.kind !== 'authorized') return;
      const auth = decodeMessage(result.authorizationBytes, 'wallet.authorization');
      const parsedOffer = decodeMessage(offer, 'purchase.offer');
      expect(auth.ok && parsedOffer.ok && checkAuthorization(auth.value, parsedOffer.value.body)).toEqual({ ok: true });
      await session.release();
      expect(session.active).toBe(false);
    });

    it('runs a gate exit in the compact form: TAP INFO, then AUTHORIZE that consumes the admission record', async () => {
      const wallet = world.newWallet();
      const entryGate = generateKeyPair();
      const admission = signMessage('gate.admission', { recordId: newChallenge(), wallet: wallet.publicKeyHex, terminalId: 'gate-north', station: 'north', time: Date.now() }, entryGate.secretKey);
      const statement = signMessage('balance.statement', {
        wallet: wallet.publicKeyHex, balanceMinor: 900, currency: 'EUR', asOf: Date.now(), hubKey: toHex(world.hub.publicKey),
        entries: [{ requestId: newChallenge(), kind: 'fare', amountMinor: -250, time: Date.now() }],
      }, world.hub.secretKey);
      h.tap(wallet);
      const card = new WalletCard(await h.reader.waitForCard());
      await card.select();
      // Records are stored as sent: the admission compact, the statement as JSON (the wallet converts it on a compact read).
      const admissionId = await card.storeRecord('Admission', encodeCompact(admission), { replace: true });
      await card.storeRecord('BalanceStatement', encodeMessage(statement), { replace: true });
      await card.storeRecord('Ticket', new Uint8Array(300).fill(7));

      const compactLicense = await card.getLicense({ compact: true });
      expect(compactLicense[0]).toBe(0xd9);
      expect(decodeCompact(compactLicense, 'wallet.license')).toEqual({ ok: true, value: wallet.license });
      expect((await card.readRecords('BalanceStatement', { compact: true }))[0]!.bytes[0]).toBe(0xd9);
      expect((await card.readRecords('BalanceStatement'))[0]!.bytes).toEqual(encodeMessage(statement));

      const info = await card.tapInfo({ license: true, kinds: ['Admission', 'BalanceStatement'] });
      expect(decodeAnyForm(info.license!, 'wallet.license')).toEqual({ ok: true, value: wallet.license });
      expect(info.records.map((r) => r.kind)).toEqual(['Admission', 'BalanceStatement']);
      expect(info.records[0]).toMatchObject({ id: admissionId });
      expect(decodeAnyForm(info.records[0]!.bytes, 'gate.admission')).toEqual({ ok: true, value: admission });
      expect(decodeAnyForm(info.records[1]!.bytes, 'balance.statement')).toEqual({ ok: true, value: statement });
      expect((await card.tapInfo({ license: false, kinds: ['Ticket'], compact: false })).records.map((r) => r.bytes.length)).toEqual([300]);

      // A fare offer without the terminal certificate, compact: the authorization comes back compact.
      const offer = createOffer(world.terminal, { terminalId: 'gate-south', merchantId: 'transit', purpose: 'fare', amountMinor: 250, currency: 'EUR', lines: [], nowMs: Date.now() });
      expect(await card.authorize(encodeCompact(offer), { deleteRecordId: 0xfffe })).toEqual({ kind: 'declined', code: 'RECORD_NOT_FOUND' });
      const result = await card.authorize(encodeCompact(offer), { deleteRecordId: admissionId as number });
      expect(result.kind).toBe('authorized');
      if (result.kind !== 'authorized') return;
      expect(result.authorizationBytes[0]).toBe(0xd9);
      const auth = decodeCompact(result.authorizationBytes, 'wallet.authorization');
      expect(auth.ok && checkAuthorization(auth.value, offer.body)).toEqual({ ok: true });
      expect((await card.readRecords()).map((r) => r.kind)).toEqual(['BalanceStatement', 'Ticket']);
      // The same offer as JSON is answered in JSON.
      const again = await card.authorize(encodeMessage(offer));
      expect(again.kind === 'authorized' && again.authorizationBytes[0]).toBe(0x7b);
      // AUTHORIZE SHORT: time/counter/signature on the air, the same envelope rebuilt by the host.
      const short = await card.authorize(encodeCompact(offer), { walletKeyHex: wallet.publicKeyHex });
      expect(short.kind).toBe('authorized');
      if (short.kind !== 'authorized') return;
      const rebuilt = decodeCompact(short.authorizationBytes, 'wallet.authorization');
      expect(rebuilt).toEqual({ ok: true, value: wallet.signed.at(-1) });
      expect(rebuilt.ok && checkAuthorization(rebuilt.value, offer.body)).toEqual({ ok: true });
      const shortJson = await card.authorize(encodeMessage(offer), { walletKeyHex: wallet.publicKeyHex });
      expect(shortJson.kind === 'authorized' && decodeMessage(shortJson.authorizationBytes, 'wallet.authorization')).toEqual({ ok: true, value: wallet.signed.at(-1) });
    });

    it('stores, reads and deletes records, including ones longer than a response APDU', async () => {
      h.tap(world.newWallet());
      const card = new WalletCard(await h.reader.waitForCard());
      await card.select();
      const ticket = new Uint8Array(700).map((_, i) => i & 0xff);
      const ticketId = await card.storeRecord('Ticket', ticket);
      const admissionId = await card.storeRecord('Admission', Uint8Array.of(1, 2, 3), { replace: true });
      expect(await card.storeRecord('Admission', Uint8Array.of(4), { replace: true })).not.toBe(admissionId);
      expect((await card.readRecords('Admission')).map((r) => r.bytes)).toEqual([Uint8Array.of(4)]);
      const all = await card.readRecords();
      expect(all.find((r) => r.id === ticketId)).toEqual({ kind: 'Ticket', id: ticketId, bytes: ticket });
      expect(await card.storeRecord('BalanceStatement', new Uint8Array(9000))).toBe('full');
      expect(await card.deleteRecord(ticketId as number)).toBe(true);
      expect(await card.deleteRecord(ticketId as number)).toBe(false);
    });

    it('returns the declined outcome for a bad offer instead of throwing', async () => {
      h.tap(world.newWallet());
      const card = new WalletCard(await h.reader.waitForCard());
      await card.select();
      const other = createWalletWorld(); // a terminal certified by an untrusted hub
      expect(await card.authorize(other.offerBytes(100))).toEqual({ kind: 'declined', code: 'UNKNOWN_ISSUER' });
    });

    it('gives one session per tap: a card left on the reader is not tapped twice', async () => {
      const wallet = world.newWallet();
      h.tap(wallet);
      const first = await h.reader.waitForCard();
      await first.release();
      const ac = new AbortController();
      const second = h.reader.waitForCard(ac.signal);
      const outcome = await Promise.race([second.then(() => 'session'), new Promise((r) => setTimeout(() => r('none'), 300))]);
      expect(outcome).toBe('none');
      h.remove();
      // Long enough for a poll to see the empty field even on a loaded machine: a removal and
      // re-tap faster than one poll is, to any reader, a card that never left.
      await new Promise((r) => setTimeout(r, 400));
      h.tap(wallet);
      const again = await second;
      expect(again.active).toBe(true);
      await again.release();
    });

    it('counts a card taken away and tapped again while nobody was waiting as a new tap', async () => {
      const wallet = world.newWallet();
      h.tap(wallet);
      const first = await h.reader.waitForCard();
      await first.release();
      await new Promise((r) => setTimeout(r, 60));
      h.remove();
      await new Promise((r) => setTimeout(r, 400)); // the terminal is busy elsewhere meanwhile
      h.tap(wallet);
      await new Promise((r) => setTimeout(r, 60));
      const again = await h.reader.waitForCard();
      expect(again.active).toBe(true);
      await again.release();
    });

    it('rejects waitForCard with NFC_SESSION_ACTIVE while the previous session is not released', async () => {
      h.tap(world.newWallet());
      const session = await h.reader.waitForCard();
      expect(isHardwareError(await h.reader.waitForCard().catch((e: unknown) => e), 'NFC_SESSION_ACTIVE')).toBe(true);
      await session.release();
    });

    it('rejects waitForCard when aborted', async () => {
      const ac = new AbortController();
      const waiting = h.reader.waitForCard(ac.signal);
      ac.abort(new Error('stop'));
      await expect(waiting).rejects.toThrow('stop');
    });

    it('fails with NFC_CARD_REMOVED when the card is pulled mid-exchange, and the next tap works', async () => {
      const wallet = world.newWallet();
      h.tap(wallet);
      const session = await h.reader.waitForCard();
      const card = new WalletCard(session);
      await card.select();
      h.pullOnNextTransmit();
      const err = await card.authorize(world.offerBytes(100)).catch((e: unknown) => e);
      expect(isHardwareError(err, 'NFC_CARD_REMOVED')).toBe(true);
      expect(session.active).toBe(false);
      expect(wallet.signed).toHaveLength(0); // the chain never completed: nothing was signed
      await session.release();
      h.tap(wallet);
      const next = new WalletCard(await h.reader.waitForCard());
      await next.select();
      expect(await next.authorize(world.offerBytes(100))).toMatchObject({ kind: 'authorized' });
    });

    it('answers 6A82 to a SELECT of a card without the applet', async () => {
      const foreign: ContactlessCard = {
        uid: Uint8Array.of(1, 2, 3, 4),
        powerOn: () => undefined,
        processApdu: async () => Uint8Array.of(0x6a, 0x82),
      };
      h.tap(foreign);
      const err = await new WalletCard(await h.reader.waitForCard()).select().catch((e: unknown) => e);
      expect(isHardwareError(err, 'WALLET_STATUS') && err.status).toBe(0x6a82);
    });
  });
}
