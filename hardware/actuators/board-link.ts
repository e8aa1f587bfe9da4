// The link to an actuator board (a Firmata serial port, an IO plugin): up until it is lost, then
// lost for good. Nothing is switched or read after that; the process restarts to get it back.
import type { HardwareError } from '../errors.ts';

export interface HardwareLink {
  /** The ACTUATOR_LINK_LOST error once the link is gone, else undefined. */
  readonly lost: HardwareError | undefined;
  /** Called once when the link is lost (in a microtask if it already is); returns an unsubscribe. */
  onLost(listener: (err: HardwareError) => void): () => void;
}

export class LinkWatch implements HardwareLink {
  private err: HardwareError | undefined;
  private readonly listeners = new Set<(err: HardwareError) => void>();

  get lost(): HardwareError | undefined {
    return this.err;
  }

  onLost(listener: (err: HardwareError) => void): () => void {
    const err = this.err;
    if (err !== undefined) {
      queueMicrotask(() => listener(err));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The first call wins: a serial port's close, then firmata's re-emitted close, are one loss. */
  lose(err: HardwareError): void {
    if (this.err !== undefined) return;
    this.err = err;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) l(err);
  }
}
