// johnny-five board bring-up. johnny-five is unmaintained since 2023: only j5-*.ts import it.
import five from 'johnny-five';
import type { Board } from 'johnny-five';
import firmataIo from 'firmata-io';
import { SerialPort } from 'serialport';
import { HardwareError } from '../errors.ts';
import { LinkWatch, type HardwareLink } from './board-link.ts';

/** StandardFirmata's default UART rate. */
const FIRMATA_BAUD_RATE = 57_600;
/** Firmata protocol: REPORT_VERSION query (one byte; the board answers F9 major minor). */
const REPORT_VERSION = 0xf9;
export const DEFAULT_HEARTBEAT_MS = 500;

type ErrorEvents = { on(e: 'error', f: (err: unknown) => void): void; off(e: 'error', f: (err: unknown) => void): void };

/**
 * johnny-five's own Firmata path would open the port with the serialport 8 that `firmata` pulls in
 * (an old native binding that is not built here); instead Firmata talks over our serialport 13.
 */
function firmataOver(path: string, link: LinkWatch): { io: unknown; errors: ErrorEvents; port: SerialPort } {
  const port = new SerialPort({ path, baudRate: FIRMATA_BAUD_RATE });
  // Before firmata's own listener, so the loss keeps serialport's DisconnectedError as its cause
  // (firmata re-emits a bare 'close'). An unplugged USB board closes the port this way.
  port.on('close', (err: Error | null) => link.lose(new HardwareError('ACTUATOR_LINK_LOST', `Firmata serial port ${path} closed`, { cause: err ?? undefined })));
  const io = new firmataIo.Firmata(port) as unknown as ErrorEvents;
  return { io, errors: io, port };
}

/**
 * A byte to the board every `intervalMs`, busy or idle, so that firmware with a watchdog can tell
 * a silent host (cable pulled, host hung) from a quiet one and switch its outputs off
 * (hardware/README.md, "Lost board link"). StandardFirmata just answers it.
 */
function startHeartbeat(port: SerialPort, link: LinkWatch, intervalMs: number): void {
  const timer = setInterval(() => {
    if (link.lost === undefined) port.write(Buffer.from([REPORT_VERSION]));
  }, intervalMs);
  timer.unref();
  link.onLost(() => clearInterval(timer));
}

export type J5BoardOptions = {
  /** Any johnny-five IO plugin object (raspi-io, the virtual IO of simulators/virtual-io, ...). */
  io?: unknown;
  /** Serial path of a StandardFirmata board (57600 baud) when no io is given. */
  port?: string;
  readyTimeoutMs?: number;
  /** Serial boards only: the keep-alive byte's period for a firmware watchdog; 0 = none. Default 500 ms. */
  heartbeatMs?: number;
};

/** A ready johnny-five board and its link: `lost` / `onLost` tell when the board is gone. */
export type J5Board = Board & HardwareLink;

/** Create a board with `repl: false` (and no debug/SIGINT hooks) and wait for 'ready'. */
export function openJ5Board(options: J5BoardOptions): Promise<J5Board> {
  if (options.io === undefined && options.port === undefined) throw new TypeError('openJ5Board: pass options.io or options.port');
  const link = new LinkWatch();
  const firmata = options.io === undefined ? firmataOver(options.port as string, link) : undefined;
  const board = new five.Board({
    io: options.io ?? firmata?.io,
    repl: false,
    debug: false,
    sigint: false,
    timeout: options.readyTimeoutMs ?? 10_000,
  });
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => {
      clearTimeout(timer);
      reject(new HardwareError('ACTUATOR_NOT_READY', 'johnny-five board failed', { cause: err }));
    };
    const timer = setTimeout(() => reject(new HardwareError('ACTUATOR_NOT_READY')), options.readyTimeoutMs ?? 10_000);
    // A port that cannot be opened (busy, not a tty) is told on the Firmata instance: a start failure.
    firmata?.errors.on('error', fail);
    board.on('error', fail);
    board.once('ready', () => {
      clearTimeout(timer);
      firmata?.errors.off('error', fail);
      board.off('error', fail);
      watchLink(board, link);
      const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
      if (firmata !== undefined && heartbeatMs > 0) startHeartbeat(firmata.port, link, heartbeatMs);
      resolve(Object.defineProperties(board, {
        lost: { get: () => link.lost },
        onLost: { value: (listener: (err: HardwareError) => void) => link.onLost(listener) },
      }) as J5Board);
    });
  });
}

/**
 * After 'ready' johnny-five re-emits its IO's 'close', 'disconnect' and 'error' on the board; each
 * means the board is gone (later writes would queue for ever on a closed port). Someone must
 * listen: an 'error' with no listener would crash the process with no word of what was lost.
 */
function watchLink(board: Board, link: LinkWatch): void {
  board.on('close', () => link.lose(new HardwareError('ACTUATOR_LINK_LOST', 'johnny-five board closed')));
  board.on('disconnect', () => link.lose(new HardwareError('ACTUATOR_LINK_LOST', 'johnny-five board disconnected')));
  board.on('error', (err: unknown) => link.lose(new HardwareError('ACTUATOR_LINK_LOST', 'johnny-five board error', { cause: err })));
}
