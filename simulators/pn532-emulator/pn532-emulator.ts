// A PN532 in HSU mode, emulated on one end of a pseudo-terminal. It speaks the frames of NXP
// UM0701-02 §6.2 through the real `serialport` binding, hosts simulated cards, and injects faults.
import { SerialPort } from 'serialport';
import { ACK_FRAME, ERROR_FRAME, FrameParser, TFI_HOST_TO_PN532, TFI_PN532_TO_HOST, encodeInformationFrame, type ParseEvent } from '../../hardware/pn532/frame.ts';
import { BRTY_106_TYPE_A, Command, Pn532Status, RfConfigItem, atsSupportsBitRate, bitRateFromCode, encodeInListPassiveTargetResponse } from '../../hardware/pn532/commands.ts';
import type { ContactlessCard } from '../wallet/contactless-card.ts';

export type Pn532EmulatorOptions = {
  path: string;
  /** Pace bytes like a UART at this rate (10 bits per byte); 0 disables pacing. Default 115200. */
  lineRateBaud?: number;
  /** Model ISO 14443 air time at this bit rate after activation (InPSL may raise it per tap); 0 disables. Default 106 000 (106 kbps). */
  airBitRate?: number;
};

/** Fault injection knobs; each counter is consumed as faults fire. */
export type Pn532Faults = {
  /** Ignore the next N command frames entirely (no ACK, no response): a lost command/ACK. */
  dropCommands: number;
  /** Send this many bytes of garbage before each of the next responses. */
  garbageBeforeResponses: number;
  /** Flip the DCS of the next N response frames (the host should NACK, we resend intact). */
  corruptResponses: number;
  /** Deliver every response in small chunks with gaps (partial frames on the line). */
  splitResponses: boolean;
  /** Pull the card away when the next InDataExchange arrives (before the card sees it). */
  pullOnNextExchange: boolean;
  /** Pull the card away after it processed the next InDataExchange but before the answer returns. */
  pullAfterNextExchange: boolean;
  /** Do not send the next ACK, but run the command (an ACK lost on the line). */
  dropNextAck: boolean;
};

export type Pn532EmulatorStats = {
  commands: number;
  nacksReceived: number;
  abortsReceived: number;
  exchanges: number;
  /** InPSL commands that changed the bit rate. */
  pslChanges: number;
};

const FIRMWARE = Uint8Array.of(0x32, 0x01, 0x06, 0x07); // PN532 v1.6, supports ISO A/B and ISO 18092
// ATS TL=5 T0 TA TB TC: FSCI 5; TA(1) 0x77 = DS and DR 2/4/8 (212/424/848 kbps) both ways, as phones and DESFire cards announce.
const ATS = Uint8Array.of(0x05, 0x75, 0x77, 0x81, 0x02);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Pn532Emulator {
  readonly path: string;
  readonly faults: Pn532Faults = {
    dropCommands: 0,
    garbageBeforeResponses: 0,
    corruptResponses: 0,
    splitResponses: false,
    pullOnNextExchange: false,
    pullAfterNextExchange: false,
    dropNextAck: false,
  };
  readonly stats: Pn532EmulatorStats = { commands: 0, nacksReceived: 0, abortsReceived: 0, exchanges: 0, pslChanges: 0 };

  private readonly lineRateBaud: number;
  private readonly airBitRate: number;
  private port: SerialPort | undefined;
  private readonly parser = new FrameParser();
  private awake = false;
  private card: ContactlessCard | undefined;
  private activeTg = 0;
  /** Air bit rates of the active target (reader → card, card → reader), set by InPSL, 106 kbps after activation. */
  private targetRates: { toCard: number; toReader: number } = { toCard: 0, toReader: 0 };
  private cardArrivalWaiters: Array<() => void> = [];
  private lastResponse: Uint8Array | undefined;
  /** Bumped when the host aborts (sends ACK) or the port closes: responses of an older epoch are dropped. */
  private epoch = 0;
  private queue: Promise<void> = Promise.resolve();
  private lineFreeAtMs = 0;
  private maxRetriesPassive = 0xff;
  /** RFConfiguration item 0x02 fRetryTimeout, in ms: how long the PN532 waits for a silent card. */
  private cardTimeoutMs = 51.2;

  constructor(options: Pn532EmulatorOptions) {
    this.path = options.path;
    this.lineRateBaud = options.lineRateBaud ?? 115_200;
    this.airBitRate = options.airBitRate ?? 106_000;
  }

  async open(): Promise<void> {
    if (this.port !== undefined) throw new Error('emulator already open');
    this.awake = false;
    this.parser.reset();
    const port = new SerialPort({ path: this.path, baudRate: 115_200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (chunk: Buffer) => this.onData(new Uint8Array(chunk)));
    port.on('error', () => undefined);
    this.port = port;
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = undefined;
    this.epoch++;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  get isOpen(): boolean {
    return this.port !== undefined;
  }

  /** Tap a card onto the reader and keep it there. */
  present(card: ContactlessCard): void {
    this.card = card;
    this.activeTg = 0;
    const waiters = this.cardArrivalWaiters;
    this.cardArrivalWaiters = [];
    for (const w of waiters) w();
  }

  /** Pull the card away. */
  remove(): void {
    this.card = undefined;
    this.activeTg = 0;
  }

  /** Air bit rates (bit/s) of the active target: 106 kbps after activation, raised by InPSL. */
  get targetBitRates(): { toCard: number; toReader: number } {
    return { ...this.targetRates };
  }

  get cardPresent(): boolean {
    return this.card !== undefined;
  }

  /** Write raw bytes on the line now (garbage injection). */
  async injectRaw(bytes: Uint8Array): Promise<void> {
    await this.write(bytes);
  }

  private onData(chunk: Uint8Array): void {
    // UM0701-02 ch. 3 (power management): in HSU the PN532 sleeps until it sees the 0x55 wake-up preamble.
    if (!this.awake) {
      const at = chunk.indexOf(0x55);
      if (at < 0) return;
      this.awake = true;
      chunk = chunk.subarray(at);
    }
    for (const ev of this.parser.push(chunk)) this.onFrame(ev);
  }

  private onFrame(ev: ParseEvent): void {
    switch (ev.kind) {
      case 'ack':
        // §6.2.1.3: an ACK from the host aborts the command in progress.
        this.stats.abortsReceived++;
        this.epoch++;
        return;
      case 'nack':
        // §6.2.1.4: the host asks for the last response again.
        this.stats.nacksReceived++;
        if (this.lastResponse !== undefined) void this.sendResponse(this.lastResponse);
        return;
      case 'corrupt':
      case 'error':
        return;
      case 'info': {
        if (ev.tfi !== TFI_HOST_TO_PN532) return;
        if (this.faults.dropCommands > 0) {
          this.faults.dropCommands--;
          return;
        }
        this.stats.commands++;
        const epoch = this.epoch;
        const data = ev.data;
        // The command is complete only after its last byte crossed the UART (10 bits per byte).
        const inboundMs = this.lineRateBaud > 0 ? ((data.length + 8) * 10 * 1000) / this.lineRateBaud : 0;
        this.queue = this.queue
          .then(async () => {
            if (inboundMs >= 1) await sleep(inboundMs);
            if (epoch !== this.epoch) return;
            if (this.faults.dropNextAck) this.faults.dropNextAck = false;
            else void this.write(ACK_FRAME);
            await this.execute(data, epoch);
          })
          .catch(() => undefined);
        return;
      }
    }
  }

  private async execute(data: Uint8Array, epoch: number): Promise<void> {
    const code = data[0];
    const params = data.subarray(1);
    let response: Uint8Array | 'error-frame';
    switch (code) {
      case Command.GetFirmwareVersion:
        response = FIRMWARE;
        break;
      case Command.SAMConfiguration:
        response = params.length >= 1 ? new Uint8Array(0) : 'error-frame';
        break;
      case Command.RFConfiguration:
        response = this.rfConfiguration(params);
        break;
      case Command.InListPassiveTarget:
        response = await this.inListPassiveTarget(params, epoch);
        break;
      case Command.InDataExchange:
        response = await this.inDataExchange(params);
        break;
      case Command.InPSL:
        response = await this.inPsl(params);
        break;
      case Command.InRelease:
        this.activeTg = 0;
        response = Uint8Array.of(Pn532Status.Ok);
        break;
      default:
        response = 'error-frame';
    }
    if (epoch !== this.epoch) return; // aborted by the host meanwhile
    const frame = response === 'error-frame'
      ? ERROR_FRAME
      : encodeInformationFrame(TFI_PN532_TO_HOST, Uint8Array.from([code! + 1, ...response]));
    this.lastResponse = frame;
    await this.sendResponse(frame);
  }

  private rfConfiguration(params: Uint8Array): Uint8Array | 'error-frame' {
    const item = params[0];
    if (item === RfConfigItem.MaxRetries && params.length === 4) {
      this.maxRetriesPassive = params[3]!;
    } else if (item === RfConfigItem.VariousTimings && params.length === 4) {
      const n = params[3]!;
      // §7.3.1: timeout = 100 µs × 2^(n−1), n in 1..16
      this.cardTimeoutMs = n === 0 ? 0 : 0.1 * 2 ** (n - 1);
    } else if (item !== RfConfigItem.RfField) {
      return 'error-frame';
    }
    return new Uint8Array(0);
  }

  private async inListPassiveTarget(params: Uint8Array, epoch: number): Promise<Uint8Array | 'error-frame'> {
    if (params.length < 2 || params[1] !== BRTY_106_TYPE_A) return 'error-frame';
    if (this.card === undefined && this.maxRetriesPassive === 0xff) {
      // 0xFF: retry forever until a card comes (or the host aborts with an ACK).
      while (this.card === undefined && epoch === this.epoch && this.port !== undefined) {
        await new Promise<void>((resolve) => {
          this.cardArrivalWaiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    }
    const card = this.card;
    if (card === undefined) return Uint8Array.of(0);
    card.powerOn();
    this.activeTg = 1;
    this.targetRates = { toCard: this.airBitRate, toReader: this.airBitRate };
    return encodeInListPassiveTargetResponse([
      // SENS_RES 0x0044 (double-size UID), SEL_RES 0x20 (ISO/IEC 14443-4), ATS TL=5 T0 TA TB TC
      { tg: 1, sensRes: 0x0044, selRes: 0x20, uid: card.uid, ats: ATS },
    ]);
  }

  /** §7.3.10 InPSL Tg BRit BRti: PPS request/response on the air (ISO/IEC 14443-4 §5.3), then the new rates. */
  private async inPsl(params: Uint8Array): Promise<Uint8Array | 'error-frame'> {
    if (params.length !== 3) return 'error-frame';
    const [tg, brIt, brTi] = [params[0]!, params[1]!, params[2]!];
    if (tg !== 1 || this.activeTg !== 1) return Uint8Array.of(Pn532Status.WrongTarget);
    // The PN532 as ISO 14443-4 initiator goes up to 424 kbps (code 02); the card's TA(1) must offer the divisor.
    if (brIt > 2 || brTi > 2) return Uint8Array.of(Pn532Status.BadCommand);
    if (!atsSupportsBitRate(ATS, brIt) || !atsSupportsBitRate(ATS, brTi)) return Uint8Array.of(Pn532Status.BadCommand);
    const card = this.card;
    if (card === undefined) {
      await sleep(this.cardTimeoutMs);
      return Uint8Array.of(Pn532Status.Timeout);
    }
    // PPSS PPS0 PPS1 CRC(2) out, PPSS CRC(2) back, at the current rate.
    if (this.airBitRate > 0) await sleep(((5 + 3 + 8) * 9 * 1000) / this.targetRates.toCard);
    if (this.airBitRate > 0) this.targetRates = { toCard: bitRateFromCode(brIt), toReader: bitRateFromCode(brTi) };
    this.stats.pslChanges++;
    return Uint8Array.of(Pn532Status.Ok);
  }

  private async inDataExchange(params: Uint8Array): Promise<Uint8Array | 'error-frame'> {
    this.stats.exchanges++;
    const tg = params[0];
    const apdu = params.slice(1);
    if (tg !== 1 || this.activeTg !== 1) return Uint8Array.of(Pn532Status.WrongTarget);
    if (this.faults.pullOnNextExchange) {
      this.faults.pullOnNextExchange = false;
      this.remove();
    }
    const card = this.card;
    if (card === undefined) {
      await sleep(this.cardTimeoutMs);
      return Uint8Array.of(Pn532Status.Timeout);
    }
    const answer = await card.processApdu(apdu);
    if (this.airBitRate > 0) {
      // 9 bits per byte (8 + parity), ISO 14443-4 block overhead (PCB, CRC, frame delay) ≈ 4 bytes each way.
      await sleep((((apdu.length + 4) * 9) / this.targetRates.toCard + ((answer.length + 4) * 9) / this.targetRates.toReader) * 1000);
    }
    if (this.faults.pullAfterNextExchange || this.card !== card) {
      this.faults.pullAfterNextExchange = false;
      this.remove();
      await sleep(this.cardTimeoutMs);
      return Uint8Array.of(Pn532Status.Timeout);
    }
    return Uint8Array.from([Pn532Status.Ok, ...answer]);
  }

  private async sendResponse(frame: Uint8Array): Promise<void> {
    let out = frame;
    if (this.faults.corruptResponses > 0) {
      this.faults.corruptResponses--;
      out = frame.slice();
      out[out.length - 2] = out[out.length - 2]! ^ 0x5a;
    }
    if (this.faults.garbageBeforeResponses > 0) {
      const garbage = Uint8Array.from({ length: this.faults.garbageBeforeResponses }, (_, i) => [0x00, 0xff, 0x13, 0x37, 0x00, 0x00, 0xab][i % 7]!);
      await this.write(garbage);
    }
    if (this.faults.splitResponses) {
      for (let i = 0; i < out.length; i += 3) {
        await this.write(out.subarray(i, i + 3));
        await sleep(2);
      }
      return;
    }
    await this.write(out);
  }

  private async write(bytes: Uint8Array): Promise<void> {
    const port = this.port;
    if (port === undefined) return;
    if (this.lineRateBaud > 0) {
      // Pace like a UART: 10 bits per byte (start, 8 data, stop).
      const now = performance.now();
      this.lineFreeAtMs = Math.max(now, this.lineFreeAtMs) + (bytes.length * 10 * 1000) / this.lineRateBaud;
      const waitMs = this.lineFreeAtMs - now;
      if (waitMs >= 1) await sleep(waitMs);
    }
    if (!port.isOpen) return;
    port.write(Buffer.from(bytes));
  }
}
