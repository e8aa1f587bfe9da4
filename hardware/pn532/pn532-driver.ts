// PN532 driver over `serialport` in HSU mode (UART, 115200 8N1), NXP UM0701-02.
// Adapter: the only file of the NFC stack that imports serialport.
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { HardwareError, isHardwareError } from '../errors.ts';
import { ACK_FRAME, FrameParser, HSU_WAKEUP_PREAMBLE, NACK_FRAME, TFI_HOST_TO_PN532, TFI_PN532_TO_HOST, encodeInformationFrame, type ParseEvent } from './frame.ts';
import { BRTY_106_TYPE_A, Command, RfConfigItem, parseFirmwareVersion, parseInListPassiveTarget, plausibleResponseLength, type FirmwareVersion, type TargetA } from './commands.ts';

export type Pn532DriverOptions = {
  path: string;
  baudRate?: number;
  /**
   * §6.2.1.3: the PN532 acknowledges within a few ms of the frame's end; USB-serial adapters add
   * up to ~16 ms; a loaded host adds its own lag. Beyond this we abort (ACK) and resend,
   * `commandRetries` times.
   */
  ackTimeoutMs?: number;
  /** Bounded command retries when no ACK comes (a lost frame on the line). */
  commandRetries?: number;
  /** Default wait for a response after the ACK. */
  responseTimeoutMs?: number;
  /** Bounded NACKs per response when a frame arrives corrupted. */
  nackRetries?: number;
  /** Pause between reconnection attempts after the adapter disappears. */
  reconnectIntervalMs?: number;
  /** §7.3.1 MxRtyPassiveActivation: 0x00..0xFE tries per InListPassiveTarget (0xFF = forever). */
  passiveActivationRetries?: number;
  /** §7.3.1 item 0x02 fRetryTimeout code n: the PN532 gives up on a silent card after 100 µs × 2^(n−1). */
  cardTimeoutCode?: number;
};

type Waiter = { resolve: (ev: ParseEvent | undefined) => void; timer: ReturnType<typeof setTimeout> };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const sameBytes = (a: Uint8Array, b: Uint8Array | undefined): boolean => b !== undefined && Buffer.from(a).equals(Buffer.from(b));

/** A response that passed its checksums but not its layout is an operational error, not a bug. */
function parsed<T>(parse: (data: Uint8Array) => T, data: Uint8Array): T {
  try {
    return parse(data);
  } catch (err) {
    throw new HardwareError('NFC_UNEXPECTED_RESPONSE', (err as Error).message, { cause: err });
  }
}

/** A corrupted frame (TFI+data as received) whose header can be the answer to `code`. */
function couldAnswer(body: Uint8Array, code: number): boolean {
  return body[0] === TFI_PN532_TO_HOST && body[1] === code + 1 && plausibleResponseLength(code, body.length);
}

/**
 * Serialized command/response over one serial port. Reconnects on its own when the adapter is
 * unplugged and plugged back; while disconnected, commands fail fast with NFC_DISCONNECTED.
 * Events: 'connected', 'disconnected' (with the cause).
 */
export class Pn532Driver extends EventEmitter {
  readonly path: string;
  private readonly opts: Required<Omit<Pn532DriverOptions, 'path'>>;
  private port: SerialPort | undefined;
  private readonly parser = new FrameParser();
  private inbox: ParseEvent[] = [];
  private waiter: Waiter | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  private connectedFlag = false;
  private needsWakeup = true;
  private reconnecting: Promise<void> | undefined;
  private configuring = false;
  /** Response code and data of the last answer taken: a PN532 resending it is not a new answer. */
  private lastResponse: Uint8Array | undefined;
  /**
   * An earlier command's answer may still be on the line (aborted after a timeout, or resent after
   * a NACK): the next command then takes no answer before its own ACK.
   */
  private staleMayFollow = false;

  constructor(options: Pn532DriverOptions) {
    super();
    if (!options.path) throw new TypeError('options.path is required');
    this.path = options.path;
    this.opts = {
      baudRate: options.baudRate ?? 115_200,
      ackTimeoutMs: options.ackTimeoutMs ?? 250,
      commandRetries: options.commandRetries ?? 3,
      responseTimeoutMs: options.responseTimeoutMs ?? 1000,
      nackRetries: options.nackRetries ?? 3,
      reconnectIntervalMs: options.reconnectIntervalMs ?? 250,
      passiveActivationRetries: options.passiveActivationRetries ?? 0x01,
      cardTimeoutCode: options.cardTimeoutCode ?? 0x0a,
    };
  }

  get connected(): boolean {
    return this.connectedFlag;
  }

  /** Open the port and configure the PN532. Rejects if the first connection fails. */
  async open(): Promise<void> {
    await this.connectOnce();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failWaiter();
    const port = this.port;
    this.port = undefined;
    this.connectedFlag = false;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  async getFirmwareVersion(): Promise<FirmwareVersion> {
    return parsed(parseFirmwareVersion, await this.command(Command.GetFirmwareVersion, new Uint8Array(0)));
  }

  /** §7.2.10 SAMConfiguration: normal mode (no SAM), timeout 1 s, IRQ used. */
  async samConfiguration(): Promise<void> {
    await this.command(Command.SAMConfiguration, Uint8Array.of(0x01, 0x14, 0x01));
  }

  /** §7.3.1 item 0x05 MaxRetries: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation. */
  async setMaxRetries(atr: number, psl: number, passiveActivation: number): Promise<void> {
    await this.command(Command.RFConfiguration, Uint8Array.of(RfConfigItem.MaxRetries, atr, psl, passiveActivation));
  }

  /** §7.3.1 item 0x02 various timings: RFU, fATR_RES_Timeout, fRetryTimeout (codes, 100 µs × 2^(n−1)). */
  async setTimeouts(atrResTimeoutCode: number, retryTimeoutCode: number): Promise<void> {
    await this.command(Command.RFConfiguration, Uint8Array.of(RfConfigItem.VariousTimings, 0x00, atrResTimeoutCode, retryTimeoutCode));
  }

  /** §7.3.5 one ISO 14443-A target at 106 kbps; [] when none answered within the retries. */
  async inListPassiveTarget(): Promise<TargetA[]> {
    return parsed(parseInListPassiveTarget, await this.command(Command.InListPassiveTarget, Uint8Array.of(0x01, BRTY_106_TYPE_A)));
  }

  /** §7.3.8 returns [status, ...dataIn]; the caller interprets the status byte. */
  async inDataExchange(tg: number, dataOut: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    if (dataOut.length > 262) throw new RangeError(`InDataExchange carries at most 262 bytes, got ${dataOut.length}`);
    return this.command(Command.InDataExchange, Uint8Array.from([tg, ...dataOut]), timeoutMs);
  }

  /**
   * §7.3.10 InPSL: change the ISO/IEC 14443-4 bit rates of an activated target (the PN532 sends
   * the PPS request, ISO/IEC 14443-4 §5.3). Codes from BitRateCode. Returns the status byte.
   */
  async inPsl(tg: number, brIt: number, brTi: number): Promise<number> {
    const r = await this.command(Command.InPSL, Uint8Array.of(tg, brIt, brTi));
    return r[0] ?? 0xff;
  }

  /** §7.3.11 InRelease; tg 0 releases all targets. Returns the status byte. */
  async inRelease(tg: number): Promise<number> {
    const r = await this.command(Command.InRelease, Uint8Array.of(tg));
    return r[0] ?? 0;
  }

  /**
   * Send one command and return the response data after the response code (§6.2.2 dialog:
   * command → ACK → response). Serialized: one command on the line at a time.
   */
  command(code: number, params: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    const run = this.lock.then(() => this.exchange(code, params, timeoutMs ?? this.opts.responseTimeoutMs));
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async exchange(code: number, params: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closed) throw new HardwareError('NFC_CLOSED');
    const port = this.port;
    if (port === undefined || (!this.connectedFlag && !this.configuring)) throw new HardwareError('NFC_DISCONNECTED');
    const frame = encodeInformationFrame(TFI_HOST_TO_PN532, Uint8Array.from([code, ...params]));
    this.inbox = [];
    // An InDataExchange is never resent: if the PN532 got it, the APDU may already have reached
    // the card, and a chained piece sent twice would corrupt the command. Other commands are
    // idempotent and retried within the bound.
    const attempts = code === Command.InDataExchange ? 1 : this.opts.commandRetries + 1;
    let acked = false;
    for (let attempt = 0; attempt < attempts && !acked; attempt++) {
      if (this.needsWakeup) {
        // UM0701-02 ch. 3 (power management), HSU wake-up: the long 0x55 preamble, then the command.
        await this.write(port, HSU_WAKEUP_PREAMBLE);
      }
      await this.write(port, frame);
      // The write callback fires when the kernel has the bytes, not when they crossed the UART.
      const lineMs = (frame.length * 10 * 1000) / this.opts.baudRate;
      const deadline = performance.now() + this.opts.ackTimeoutMs + lineMs;
      for (;;) {
        const ev = await this.nextEvent(deadline - performance.now());
        if (this.port !== port) throw new HardwareError('NFC_DISCONNECTED', 'serial adapter gone during a command');
        if (ev === undefined) break;
        if (ev.kind === 'ack') {
          acked = true;
          break;
        }
        if (ev.kind === 'error' || (ev.kind === 'info' && ev.tfi === TFI_PN532_TO_HOST && ev.data[0] === code + 1)) {
          // The ACK was lost on the line but the answer arrived: it answers this command — unless
          // an earlier answer may still be arriving, or it repeats the last answer (the PN532
          // resending it after a NACK). Then only the ACK says the PN532 took this command.
          if (this.staleMayFollow || (ev.kind === 'info' && sameBytes(ev.data, this.lastResponse))) continue;
          this.inbox.unshift(ev);
          acked = true;
          break;
        }
      }
      if (!acked) {
        // §6.2.1.3 abort whatever half-arrived, then let the line go quiet so a late answer to
        // the aborted command cannot be taken for the answer to its retry.
        await this.write(port, ACK_FRAME);
        while ((await this.nextEvent(this.opts.ackTimeoutMs)) !== undefined && this.port === port) {
          // discard
        }
        if (this.port !== port) throw new HardwareError('NFC_DISCONNECTED', 'serial adapter gone during a command');
      }
    }
    if (!acked) {
      const err = new HardwareError('NFC_ACK_TIMEOUT', `no ACK for command 0x${code.toString(16)} after ${attempts} attempt(s)`);
      // A silent adapter is treated like an unplugged one: reopen it in the background.
      if (!this.configuring && attempts > 1) this.dropConnection(err);
      throw err;
    }
    this.needsWakeup = false;
    let nacks = 0;
    let nackedLength: number | undefined;
    let clean = false;
    const deadline = performance.now() + timeoutMs;
    try {
      for (;;) {
        const ev = await this.nextEvent(deadline - performance.now());
        if (this.port !== port) throw new HardwareError('NFC_DISCONNECTED', 'serial adapter gone during a command');
        if (ev === undefined) {
          await this.write(port, ACK_FRAME);
          throw new HardwareError('NFC_RESPONSE_TIMEOUT', `no response to command 0x${code.toString(16)} within ${timeoutMs} ms`);
        }
        if (ev.kind === 'error') {
          clean = nacks === 0;
          throw new HardwareError('NFC_ERROR_FRAME', `PN532 error frame for command 0x${code.toString(16)}`);
        }
        if (ev.kind === 'corrupt') {
          // §6.2.1.4 a NACK makes the PN532 send its LAST response again: only worth it for a frame
          // that can be this command's answer. After line noise the last response is the previous
          // command's, and for InDataExchange (D5 41 again) it would pass for this one's.
          if (ev.reason !== 'dcs' || !couldAnswer(ev.body, code)) continue; // garbage: keep reading
          if (nacks++ >= this.opts.nackRetries) throw new HardwareError('NFC_FRAME_INVALID', `corrupted response to 0x${code.toString(16)}`);
          nackedLength = ev.body.length;
          await this.write(port, NACK_FRAME);
          continue;
        }
        if (ev.kind !== 'info' || ev.tfi !== TFI_PN532_TO_HOST) continue;
        if (ev.data[0] !== code + 1) {
          throw new HardwareError('NFC_UNEXPECTED_RESPONSE', `response code 0x${(ev.data[0] ?? 0).toString(16)} to command 0x${code.toString(16)}`);
        }
        // The previous answer, resent, but not the length of the frame we NACKed: that frame was
        // noise, not our answer. Drop the resend; the real answer is still to come.
        if (nackedLength !== undefined && ev.data.length + 1 !== nackedLength && sameBytes(ev.data, this.lastResponse)) continue;
        this.lastResponse = ev.data;
        clean = nacks === 0;
        return ev.data.slice(1);
      }
    } finally {
      this.staleMayFollow = !clean;
    }
  }

  private async connectOnce(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: this.opts.baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(new HardwareError('NFC_DISCONNECTED', `cannot open ${this.path}`, { cause: err })) : resolve())));
    if (this.closed) {
      port.close();
      throw new HardwareError('NFC_CLOSED');
    }
    this.parser.reset();
    this.inbox = [];
    this.needsWakeup = true;
    this.lastResponse = undefined;
    this.staleMayFollow = false;
    this.port = port;
    port.on('data', (chunk: Buffer) => this.onData(new Uint8Array(chunk)));
    port.on('error', (err: Error) => this.dropConnection(new HardwareError('NFC_DISCONNECTED', 'serial port error', { cause: err })));
    port.on('close', (err: Error | null) => this.dropConnection(new HardwareError('NFC_DISCONNECTED', 'serial port closed', { cause: err ?? undefined })));
    this.configuring = true;
    try {
      await this.command(Command.SAMConfiguration, Uint8Array.of(0x01, 0x14, 0x01));
      await this.setMaxRetries(0xff, 0x01, this.opts.passiveActivationRetries);
      await this.setTimeouts(0x0b, this.opts.cardTimeoutCode);
    } catch (err) {
      this.configuring = false;
      this.port = undefined;
      port.removeAllListeners();
      port.on('error', () => undefined);
      if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
      throw err;
    }
    this.configuring = false;
    this.connectedFlag = true;
    this.emit('connected');
  }

  private dropConnection(cause: HardwareError): void {
    const port = this.port;
    if (port === undefined) return;
    this.port = undefined;
    const wasConnected = this.connectedFlag;
    this.connectedFlag = false;
    port.removeAllListeners();
    port.on('error', () => undefined);
    if (port.isOpen) port.close();
    this.failWaiter();
    if (wasConnected) this.emit('disconnected', cause);
    if (!this.closed && !this.configuring) this.reconnectLoop();
  }

  private reconnectLoop(): void {
    if (this.reconnecting !== undefined) return;
    this.reconnecting = (async () => {
      while (!this.closed && !this.connectedFlag) {
        await sleep(this.opts.reconnectIntervalMs);
        if (this.closed) break;
        try {
          await this.connectOnce();
        } catch (err) {
          if (!isHardwareError(err)) throw err;
        }
      }
    })().finally(() => {
      this.reconnecting = undefined;
    });
  }

  private onData(chunk: Uint8Array): void {
    for (const ev of this.parser.push(chunk)) {
      const w = this.waiter;
      if (w !== undefined) {
        this.waiter = undefined;
        clearTimeout(w.timer);
        w.resolve(ev);
      } else if (this.inbox.length < 64) {
        this.inbox.push(ev);
      }
    }
  }

  private nextEvent(timeoutMs: number): Promise<ParseEvent | undefined> {
    const queued = this.inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (timeoutMs <= 0 || this.port === undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Timers run before the I/O poll phase: give bytes that already arrived one turn of the
        // event loop, so a busy process does not mistake its own lag for a silent PN532.
        setImmediate(() => {
          if (this.waiter?.timer !== timer) return;
          this.waiter = undefined;
          resolve(undefined);
        });
      }, timeoutMs);
      this.waiter = { resolve, timer };
    });
  }

  private failWaiter(): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w !== undefined) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
  }

  private write(port: SerialPort, bytes: Uint8Array): Promise<void> {
    if (!port.isOpen) return Promise.reject(new HardwareError('NFC_DISCONNECTED', 'serial port not open'));
    return new Promise((resolve, reject) => {
      port.write(Buffer.from(bytes), (err) => (err ? reject(new HardwareError('NFC_DISCONNECTED', 'serial write failed', { cause: err })) : resolve()));
    });
  }
}
