// Minimal typings for the parts of johnny-five 2.1 we use (it ships none). Only j5-*.ts import it.
declare module 'johnny-five' {
  import type { EventEmitter } from 'node:events';

  export interface BoardOptions {
    io?: unknown;
    port?: string;
    repl?: boolean;
    debug?: boolean;
    sigint?: boolean;
    timeout?: number;
    id?: string;
  }
  export class Board extends EventEmitter {
    constructor(options?: BoardOptions);
    readonly isReady: boolean;
    readonly io: unknown;
  }
  export interface ComponentOptions {
    pin: number | string;
    board?: Board;
  }
  export class Led {
    constructor(options: ComponentOptions);
    on(): this;
    off(): this;
    stop(): this;
    readonly isOn: boolean;
  }
  export class Relay {
    constructor(options: ComponentOptions & { type?: 'NO' | 'NC' });
    open(): this;
    close(): this;
    readonly isOn: boolean;
  }
  export class Servo {
    constructor(options: ComponentOptions & { startAt?: number; range?: [number, number]; pwmRange?: [number, number] });
    to(degrees: number): this;
    stop(): this;
    readonly value: number;
  }
  export class Button extends EventEmitter {
    constructor(options: ComponentOptions & { invert?: boolean; isPullup?: boolean; holdtime?: number });
    readonly isDown: boolean;
  }
  const five: {
    Board: typeof Board;
    Led: typeof Led;
    Relay: typeof Relay;
    Servo: typeof Servo;
    Button: typeof Button;
  };
  export default five;
}
