// johnny-five board bring-up. johnny-five is unmaintained since 2023: only j5-*.ts import it.
import five from 'johnny-five';
import type { Board } from 'johnny-five';
import firmataIo from 'firmata-io';
import { SerialPort } from 'serialport';
import { HardwareError } from '../errors.ts';

/** StandardFirmata's default UART rate. */
const FIRMATA_BAUD_RATE = 57_600;

/**
 * johnny-five's own Firmata path would open the port with the serialport 8 that `firmata` pulls in
 * (an old native binding that is not built here); instead Firmata talks over our serialport 13.
 */
function firmataOver(path: string): { io: unknown; errors: { once(e: 'error', f: (err: unknown) => void): void; off(e: 'error', f: (err: unknown) => void): void } } {
  const port = new SerialPort({ path, baudRate: FIRMATA_BAUD_RATE });
  const io = new firmataIo.Firmata(port) as unknown as { once(e: 'error', f: (err: unknown) => void): void; off(e: 'error', f: (err: unknown) => void): void };
  return { io, errors: io };
}

export type J5BoardOptions = {
  /** Any johnny-five IO plugin object (raspi-io, the virtual IO of simulators/virtual-io, ...). */
  io?: unknown;
  /** Serial path of a StandardFirmata board (57600 baud) when no io is given. */
  port?: string;
  readyTimeoutMs?: number;
};

export type J5Board = Board;

/** Create a board with `repl: false` (and no debug/SIGINT hooks) and wait for 'ready'. */
export function openJ5Board(options: J5BoardOptions): Promise<J5Board> {
  if (options.io === undefined && options.port === undefined) throw new TypeError('openJ5Board: pass options.io or options.port');
  const firmata = options.io === undefined ? firmataOver(options.port as string) : undefined;
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
    // A port that cannot be opened (busy, not a tty) is told on the Firmata instance: a start
    // failure. Once the board is up, a lost port is left to crash the process (systemd restarts it).
    firmata?.errors.once('error', fail);
    board.once('ready', () => {
      clearTimeout(timer);
      firmata?.errors.off('error', fail);
      resolve(board);
    });
    board.once('error', fail);
  });
}
