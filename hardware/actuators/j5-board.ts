// johnny-five board bring-up. johnny-five is unmaintained since 2023: only j5-*.ts import it.
import five from 'johnny-five';
import type { Board } from 'johnny-five';
import { HardwareError } from '../errors.ts';

export type J5BoardOptions = {
  /** Any johnny-five IO plugin object (raspi-io, the virtual IO of simulators/virtual-io, ...). */
  io?: unknown;
  /** Serial path of a Firmata board when no io is given (johnny-five's default Firmata IO). */
  port?: string;
  readyTimeoutMs?: number;
};

export type J5Board = Board;

/** Create a board with `repl: false` (and no debug/SIGINT hooks) and wait for 'ready'. */
export function openJ5Board(options: J5BoardOptions): Promise<J5Board> {
  if (options.io === undefined && options.port === undefined) throw new TypeError('openJ5Board: pass options.io or options.port');
  const board = new five.Board({
    ...(options.io !== undefined ? { io: options.io } : { port: options.port }),
    repl: false,
    debug: false,
    sigint: false,
    timeout: options.readyTimeoutMs ?? 10_000,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new HardwareError('ACTUATOR_NOT_READY')), options.readyTimeoutMs ?? 10_000);
    board.once('ready', () => {
      clearTimeout(timer);
      resolve(board);
    });
    board.once('error', (err: unknown) => {
      clearTimeout(timer);
      reject(new HardwareError('ACTUATOR_NOT_READY', 'johnny-five board failed', { cause: err }));
    });
  });
}
