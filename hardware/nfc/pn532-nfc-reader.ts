// NfcReader over a PN532: a card-present polling loop (InListPassiveTarget) and one session per tap.
import { HardwareError, isHardwareError } from '../errors.ts';
import { Pn532Status, STATUS_ERROR_MASK, type TargetA } from '../pn532/commands.ts';
import { Pn532Driver, type Pn532DriverOptions } from '../pn532/pn532-driver.ts';
import { abortError, type NfcReader, type NfcSession } from './nfc-reader.ts';

export type Pn532NfcReaderOptions = Pn532DriverOptions & {
  /** Pause between InListPassiveTarget polls when no card is in the field. */
  pollIntervalMs?: number;
  /** Wait for one APDU exchange (covers the wallet's signing time). */
  exchangeTimeoutMs?: number;
};

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class Pn532NfcReader implements NfcReader {
  readonly driver: Pn532Driver;
  private readonly pollIntervalMs: number;
  private readonly exchangeTimeoutMs: number;
  /** UID of the last released card that has not been seen leaving the field yet. */
  private lingeringUid: string | undefined;
  private session: Pn532Session | undefined;

  private constructor(driver: Pn532Driver, options: Pn532NfcReaderOptions) {
    this.driver = driver;
    this.pollIntervalMs = options.pollIntervalMs ?? 20;
    this.exchangeTimeoutMs = options.exchangeTimeoutMs ?? 2000;
  }

  /** Open the serial port at `options.path` and configure the PN532 (wake-up, SAM, RF retries). */
  static async open(options: Pn532NfcReaderOptions): Promise<Pn532NfcReader> {
    const driver = new Pn532Driver(options);
    await driver.open();
    return new Pn532NfcReader(driver, options);
  }

  async waitForCard(signal?: AbortSignal): Promise<NfcSession> {
    if (this.session?.active) throw new Error('waitForCard: release the current session first');
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      let targets: TargetA[] = [];
      try {
        targets = await this.driver.inListPassiveTarget();
      } catch (err) {
        // Operational trouble (unplugged, garbage, lost ACK): the driver recovers; keep polling.
        if (!isHardwareError(err) || err.code === 'NFC_CLOSED') throw err;
      }
      const target = targets[0];
      if (target === undefined) {
        this.lingeringUid = undefined;
      } else if (toHex(target.uid) !== this.lingeringUid) {
        this.lingeringUid = undefined;
        this.session = new Pn532Session(this.driver, target, this.exchangeTimeoutMs, (uid) => {
          this.lingeringUid = uid;
        });
        return this.session;
      } else {
        // Same card still resting on the reader: deselect it again and wait for it to leave.
        await this.driver.inRelease(target.tg).catch(() => undefined);
      }
      await sleep(this.pollIntervalMs, signal);
    }
  }

  async close(): Promise<void> {
    await this.driver.close();
  }
}

class Pn532Session implements NfcSession {
  readonly uid: Uint8Array;
  private activeFlag = true;

  constructor(
    private readonly driver: Pn532Driver,
    private readonly target: TargetA,
    private readonly exchangeTimeoutMs: number,
    private readonly onReleased: (uidHex: string | undefined) => void,
  ) {
    this.uid = target.uid;
  }

  get active(): boolean {
    return this.activeFlag;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.activeFlag) throw new HardwareError('NFC_SESSION_RELEASED');
    let r: Uint8Array;
    try {
      r = await this.driver.inDataExchange(this.target.tg, apdu, this.exchangeTimeoutMs);
    } catch (err) {
      this.lose();
      throw err;
    }
    const status = (r[0] ?? 0xff) & STATUS_ERROR_MASK;
    if (status === Pn532Status.Ok) {
      // §7.3.8 MI bit: more data pending; our applet never needs it, so it is a protocol error.
      if (((r[0] ?? 0) & 0x40) !== 0) {
        this.lose();
        throw new HardwareError('NFC_UNEXPECTED_RESPONSE', 'InDataExchange answered with MI set (response too long)');
      }
      return r.slice(1);
    }
    this.lose();
    if (status === Pn532Status.Timeout || status === Pn532Status.WrongTarget || status === Pn532Status.TargetReleased) {
      throw new HardwareError('NFC_CARD_REMOVED', undefined, { status });
    }
    throw new HardwareError('NFC_STATUS', `InDataExchange status 0x${status.toString(16)}`, { status });
  }

  async release(): Promise<void> {
    if (!this.activeFlag) return;
    this.activeFlag = false;
    this.onReleased(toHex(this.uid));
    await this.driver.inRelease(this.target.tg).catch((err: unknown) => {
      if (!isHardwareError(err)) throw err;
    });
  }

  private lose(): void {
    // The card is gone (or the line is): this tap is over, a new tap starts a new session.
    // Deselect it anyway so a card still in the field is activated afresh (its applet state reset).
    if (!this.activeFlag) return;
    this.activeFlag = false;
    this.onReleased(undefined);
    void this.driver.inRelease(this.target.tg).catch(() => undefined);
  }
}
