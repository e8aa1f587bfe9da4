// PosHardware on a johnny-five board: three status LEDs and an active buzzer; the display is injected.
import five from 'johnny-five';
import type { Led } from 'johnny-five';
import { ConsoleDisplay, PosController, type DisplayLine, type Pos, type PosHardware } from './pos.ts';
import type { J5Board } from './j5-board.ts';

export type J5PosPins = { greenLed: number; yellowLed: number; redLed: number; buzzer: number };

export class J5PosHardware implements PosHardware {
  private readonly leds: Record<'green' | 'yellow' | 'red', Led>;
  private readonly buzzer: Led;

  constructor(private readonly board: J5Board, pins: J5PosPins, readonly display: DisplayLine = new ConsoleDisplay()) {
    this.leds = {
      green: new five.Led({ pin: pins.greenLed, board }),
      yellow: new five.Led({ pin: pins.yellowLed, board }),
      red: new five.Led({ pin: pins.redLed, board }),
    };
    this.buzzer = new five.Led({ pin: pins.buzzer, board });
  }

  setLed(led: 'green' | 'yellow' | 'red', on: boolean): void {
    // LEDs and buzzer are feedback: on a lost link they are skipped (a write would queue for ever).
    if (this.board.lost !== undefined) return;
    if (on) this.leds[led].on();
    else this.leds[led].off();
  }

  setBuzzer(on: boolean): void {
    if (this.board.lost !== undefined) return;
    if (on) this.buzzer.on();
    else this.buzzer.off();
  }

  async dispose(): Promise<void> {
    if (this.board.lost !== undefined) return;
    for (const led of [...Object.values(this.leds), this.buzzer]) led.off();
  }
}

export function createJ5Pos(board: J5Board, pins: J5PosPins, display?: DisplayLine): Pos {
  return new PosController(new J5PosHardware(board, pins, display));
}
