// NfcReader without serial or PN532: cards are handed to it directly. Same contract as
// Pn532NfcReader (hardware/nfc/nfc-reader.contract.ts), so terminals run unchanged on it.
import { HardwareError } from '../../hardware/errors.ts';
import { abortError, type NfcReader, type NfcSession } from '../../hardware/nfc/nfc-reader.ts';
import type { ContactlessCard } from './contactless-card.ts';

export class SimulatedNfcReader implements NfcReader {
  private card: ContactlessCard | undefined;
  /** The card whose session was released while it stayed in the field. */
  private lingering: ContactlessCard | undefined;
  private session: SimulatedSession | undefined;
  private waiters = new Set<() => void>();
  private closed = false;
  /** Test hook: the card leaves the field when the next APDU is sent. */
  pullOnNextTransmit = false;

  /** Put a card in the field and keep it there. */
  tap(card: ContactlessCard): void {
    this.card = card;
    this.lingering = undefined;
    this.session?.lose();
    this.wake();
  }

  /** Take the card away. */
  remove(): void {
    this.card = undefined;
    this.lingering = undefined;
    this.session?.lose();
  }

  get cardPresent(): boolean {
    return this.card !== undefined;
  }

  async waitForCard(signal?: AbortSignal): Promise<NfcSession> {
    if (this.session?.active) throw new HardwareError('NFC_SESSION_ACTIVE', 'waitForCard: release the current session first');
    for (;;) {
      if (this.closed) throw new HardwareError('NFC_CLOSED');
      if (signal?.aborted) throw abortError(signal);
      const card = this.card;
      if (card !== undefined && card !== this.lingering) {
        card.powerOn();
        this.session = new SimulatedSession(this, card);
        return this.session;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.session?.lose();
    this.wake();
  }

  /** @internal */
  released(card: ContactlessCard): void {
    if (this.card === card) this.lingering = card;
  }

  /** @internal */
  inField(card: ContactlessCard): boolean {
    if (this.pullOnNextTransmit) {
      this.pullOnNextTransmit = false;
      this.remove();
    }
    return this.card === card;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

class SimulatedSession implements NfcSession {
  readonly uid: Uint8Array;
  private activeFlag = true;

  constructor(private readonly reader: SimulatedNfcReader, private readonly card: ContactlessCard) {
    this.uid = card.uid;
  }

  get active(): boolean {
    return this.activeFlag;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.activeFlag) throw new HardwareError('NFC_SESSION_RELEASED');
    if (!this.reader.inField(this.card)) {
      this.activeFlag = false;
      throw new HardwareError('NFC_CARD_REMOVED');
    }
    const answer = await this.card.processApdu(apdu.slice());
    if (!this.reader.inField(this.card) || !this.activeFlag) {
      this.activeFlag = false;
      throw new HardwareError('NFC_CARD_REMOVED');
    }
    return answer;
  }

  async release(): Promise<void> {
    if (!this.activeFlag) return;
    this.activeFlag = false;
    this.reader.released(this.card);
  }

  lose(): void {
    this.activeFlag = false;
  }
}
