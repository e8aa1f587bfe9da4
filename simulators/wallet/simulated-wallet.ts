// A simulated wallet (card or phone): real Ed25519 keys, an issuer-signed license, the applet
// protocol of hardware/README.md, and the shared purchase handshake from protocol/.
import { encodeShortAuthorization, type StoredRecord } from '../../hardware/wallet-apdu/apdu.ts';
import {
  authorizeOffer, checkOffer, decodeAnyForm, decodeMessage, encodeCompact, encodeMessage, fromHex, generateKeyPair, issueWalletLicense, sha256, toHex, type Body, type Envelope, type ErrorCode,
  type KeyPair,
} from '../../protocol/index.ts';
import type { ContactlessCard } from './contactless-card.ts';
import { RecordStore, type RecordStoreLimits } from './record-store.ts';
import { WalletApplet, type AppletAuthorizeResult } from './wallet-applet.ts';

export type SimulatedWalletOptions = {
  keys: KeyPair;
  license: Envelope<'wallet.license'>;
  /** Hub keys (hex) whose terminal certificates this wallet accepts in offers. */
  trustedHubKeys: readonly string[];
  now?: () => number;
  /** The holder's consent (a phone may ask): return an ErrorCode to decline. */
  consent?: (offer: Body<'purchase.offer'>) => ErrorCode | undefined;
  recordLimits?: RecordStoreLimits;
  /** ISO 14443-A UID; default: 7 bytes derived from the public key (NXP-style 0x04 prefix). */
  uid?: Uint8Array;
};

export class SimulatedWallet implements ContactlessCard {
  readonly keys: KeyPair;
  readonly license: Envelope<'wallet.license'>;
  readonly uid: Uint8Array;
  readonly applet: WalletApplet;
  /**
   * Monotonic authorization counter (replay protection at the hub, like BoltCard's tap counter),
   * one up per authorization. A card keeps it in its own memory; this wallet lives in a process,
   * so it starts at the time in ms: a wallet made again for the same key (a restarted demo) starts
   * past every counter the earlier one used, and consecutive authorizations stay inside the hub's
   * counter window (an offline one uploaded after a later online one is not taken for a replay).
   */
  counter: number;
  /** Every authorization this wallet signed, newest last (test visibility). */
  readonly signed: Envelope<'wallet.authorization'>[] = [];
  private readonly now: () => number;
  /** Compact forms of stored JSON records, by the stored bytes (the store keeps its own copies). */
  private readonly compactCache = new WeakMap<Uint8Array, Uint8Array>();

  constructor(private readonly options: SimulatedWalletOptions) {
    this.keys = options.keys;
    this.license = options.license;
    this.now = options.now ?? Date.now;
    this.counter = this.now();
    this.uid = options.uid ?? Uint8Array.from([0x04, ...sha256(this.keys.publicKey).subarray(0, 6)]);
    const licenseBytes = encodeMessage(this.license);
    const compactLicenseBytes = encodeCompact(this.license);
    this.applet = new WalletApplet({
      licenseBytes: () => licenseBytes,
      compactLicenseBytes: () => compactLicenseBytes,
      compactRecord: (record) => this.compactRecord(record),
      authorize: (offerBytes, { short }) => this.authorize(offerBytes, short),
      records: new RecordStore(options.recordLimits),
    });
  }

  /** A fresh wallet with a new key pair and a license issued by `issuer`. */
  static create(input: {
    issuer: KeyPair;
    trustedHubKeys: readonly string[];
    nowMs?: number;
    validForMs?: number;
    ageOver?: number;
    groups?: string[];
    offlineLimitMinor?: number;
    currency?: string;
    keys?: KeyPair;
    now?: () => number;
    consent?: SimulatedWalletOptions['consent'];
    recordLimits?: RecordStoreLimits;
  }): SimulatedWallet {
    const keys = input.keys ?? generateKeyPair();
    const nowMs = input.nowMs ?? Date.now();
    const license = issueWalletLicense(input.issuer, {
      wallet: toHex(keys.publicKey),
      notBefore: nowMs - 60_000,
      notAfter: nowMs + (input.validForMs ?? 365 * 24 * 3600_000),
      ageOver: input.ageOver ?? 0,
      groups: input.groups ?? [],
      offlineLimitMinor: input.offlineLimitMinor ?? 5_000,
      currency: input.currency ?? 'EUR',
    });
    return new SimulatedWallet({ keys, license, trustedHubKeys: input.trustedHubKeys, now: input.now, consent: input.consent, recordLimits: input.recordLimits });
  }

  get publicKeyHex(): string {
    return toHex(this.keys.publicKey);
  }

  powerOn(): void {
    this.applet.reset();
  }

  processApdu(apdu: Uint8Array): Promise<Uint8Array> {
    return this.applet.process(apdu);
  }

  /** A phone converts a JSON record it stored to the compact form; compact or unknown bytes stay as stored. */
  private compactRecord(record: StoredRecord): Uint8Array {
    if (record.bytes[0] !== 0x7b) return record.bytes;
    const cached = this.compactCache.get(record.bytes);
    if (cached !== undefined) return cached;
    const decoded = decodeMessage(record.bytes, ['gate.admission', 'ticket', 'balance.statement']);
    const out = decoded.ok ? encodeCompact(decoded.value) : record.bytes;
    this.compactCache.set(record.bytes, out);
    return out;
  }

  private authorize(offerBytes: Uint8Array, short: boolean): AppletAuthorizeResult {
    // hardware/README.md: the authorization travels in the form the offer came in.
    const compact = offerBytes[0] !== 0x7b;
    const decoded = decodeAnyForm(offerBytes, 'purchase.offer');
    if (!decoded.ok) return { kind: 'declined', code: decoded.code };
    const nowMs = this.now();
    const check = checkOffer(decoded.value, this.options.trustedHubKeys, nowMs);
    if (!check.ok) return { kind: 'declined', code: check.code };
    const refusal = this.options.consent?.(decoded.value.body);
    if (refusal !== undefined) return { kind: 'declined', code: refusal };
    this.counter += 1;
    const auth = authorizeOffer(this.keys, decoded.value, this.counter, nowMs);
    this.signed.push(auth);
    if (short) return { kind: 'authorized', authorizationBytes: encodeShortAuthorization({ timeMs: auth.body.time, counter: auth.body.counter, signature: fromHex(auth.sig) }) };
    return { kind: 'authorized', authorizationBytes: compact ? encodeCompact(auth) : encodeMessage(auth) };
  }
}
