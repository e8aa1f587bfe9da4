// NfcReader over a PN532: a card-present polling loop (InListPassiveTarget) and one session per tap.
import { HardwareError, isHardwareError } from '../errors.ts';
import { Pn532Status, STATUS_ERROR_MASK, atsSupportsBitRate, bitRateCode, type BitRateKbps, type TargetA } from '../pn532/commands.ts';
import { Pn532Driver, type Pn532DriverOptions } from '../pn532/pn532-driver.ts';
import { abortError, type NfcReader, type NfcSession } from './nfc-reader.ts';

export type Pn532NfcReaderOptions = Pn532DriverOptions & {
  /** Pause between InListPassiveTarget polls when no card is in the field. */
  pollIntervalMs?: number;
  /** Wait for one APDU exchange (covers the wallet's signing time). */
  exchangeTimeoutMs?: number;
  /**
   * ISO/IEC 14443-4 bit rate to ask for after activation (InPSL, UM0701-02 §7.3.10), when the
   * card's ATS TA(1) offers it in both directions; otherwise the tap stays at 106 kbps. Default 106.
   */
  bitRateKbps?: BitRateKbps;
};

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

type Waiter = { resolve: (session: NfcSession) => void; reject: (err: unknown) => void };

/**
 * The poll loop runs in the background from open() to close() whenever no session is active, so
 * the reader always knows whether the field is empty: a card taken away and tapped again while
 * the terminal was busy counts as a new tap; a card resting on the reader does not.
 */
export class Pn532NfcReader implements NfcReader {
  readonly driver: Pn532Driver;
  private readonly pollIntervalMs: number;
  private readonly exchangeTimeoutMs: number;
  private readonly bitRateKbps: BitRateKbps;
  /** UID of the last released card that has not been seen leaving the field yet. */
  private lingeringUid: string | undefined;
  private session: Pn532Session | undefined;
  private waiters: Waiter[] = [];
  private closed = false;
  private readonly loop: Promise<void>;
  private wakeLoop: (() => void) | undefined;

  private constructor(driver: Pn532Driver, options: Pn532NfcReaderOptions) {
    this.driver = driver;
    this.pollIntervalMs = options.pollIntervalMs ?? 20;
    this.exchangeTimeoutMs = options.exchangeTimeoutMs ?? 2000;
    this.bitRateKbps = options.bitRateKbps ?? 106;
    if (![106, 212, 424].includes(this.bitRateKbps)) throw new RangeError(`bitRateKbps must be 106, 212 or 424, got ${String(options.bitRateKbps)}`);
    this.loop = this.pollLoop();
  }

  /** Open the serial port at `options.path` and configure the PN532 (wake-up, SAM, RF retries). */
  static async open(options: Pn532NfcReaderOptions): Promise<Pn532NfcReader> {
    const driver = new Pn532Driver(options);
    await driver.open();
    return new Pn532NfcReader(driver, options);
  }

  waitForCard(signal?: AbortSignal): Promise<NfcSession> {
    if (this.session?.active) return Promise.reject(new HardwareError('NFC_SESSION_ACTIVE', 'waitForCard: release the current session first'));
    if (this.closed) return Promise.reject(new HardwareError('NFC_CLOSED'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(abortError(signal!));
      };
      const waiter: Waiter = {
        resolve: (session) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(session);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.wakeLoop?.();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new HardwareError('NFC_CLOSED'));
    this.wakeLoop?.();
    await this.driver.close();
    await this.loop;
  }

  private async pollLoop(): Promise<void> {
    while (!this.closed) {
      if (this.session?.active) {
        await this.pause(this.pollIntervalMs);
        continue;
      }
      let targets: TargetA[];
      try {
        targets = await this.driver.inListPassiveTarget();
      } catch (err) {
        // Unplugged, garbage, lost ACK: the driver recovers on its own; keep polling. A failed poll
        // says nothing about the field: a resting card stays lingering, or it would be charged twice.
        if (!isHardwareError(err)) throw err;
        if (err.code === 'NFC_CLOSED') return;
        await this.pause(this.pollIntervalMs);
        continue;
      }
      const target = targets[0];
      if (target === undefined) {
        // Only a poll that succeeded and found nothing proves the card left.
        this.lingeringUid = undefined;
      } else if (toHex(target.uid) !== this.lingeringUid && this.waiters.length > 0 && !this.closed) {
        if (!(await this.raiseBitRate(target))) {
          await this.pause(this.pollIntervalMs);
          continue;
        }
        // The waiter may have been aborted (or the reader closed) during the InPSL round trip.
        const waiter = this.closed ? undefined : this.waiters.shift();
        if (waiter === undefined) {
          // Nobody takes this tap: deselect it like any card nobody waits for (not lingering, so
          // the next waitForCard still gets it) and keep polling.
          await this.driver.inRelease(target.tg).catch(() => undefined);
          await this.pause(this.pollIntervalMs);
          continue;
        }
        this.session = new Pn532Session(this.driver, target, this.exchangeTimeoutMs, (uid) => {
          this.lingeringUid = uid;
        });
        waiter.resolve(this.session);
        continue;
      } else {
        // A resting card, or a new one nobody waits for yet: deselect it and keep watching.
        await this.driver.inRelease(target.tg).catch(() => undefined);
      }
      await this.pause(this.pollIntervalMs);
    }
  }

  /** InPSL when asked for and the card offers it; false when the card was lost on the way. */
  private async raiseBitRate(target: TargetA): Promise<boolean> {
    const code = bitRateCode(this.bitRateKbps);
    if (code === 0 || !atsSupportsBitRate(target.ats, code)) return true;
    try {
      // A refused PPS leaves the card at 106 kbps (ISO/IEC 14443-4 §5.3): the tap goes on at the
      // default rate; a card that left is reported by the first exchange.
      await this.driver.inPsl(target.tg, code, code);
      return true;
    } catch (err) {
      if (!isHardwareError(err)) throw err;
      return false;
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      this.wakeLoop = done;
      function done(): void {
        clearTimeout(t);
        resolve();
      }
    });
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
