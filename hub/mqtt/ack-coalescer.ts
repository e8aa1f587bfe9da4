/**
 * Holds a terminal's outgoing bytes from the arrival of its request until the hub's reply to it
 * has been written, so the PUBACK and the signed reply leave in one write: one syscall per
 * request instead of two (a `writev` costs the hub ~50 µs on a loaded VM). A PUBACK is
 * delivery, never a decision, so holding it for the service time changes nothing a terminal may
 * act on. Bounded: released after `maxHoldMs` even when no reply comes (a hub fault sends none),
 * and nothing is held for a socket that already has a backlog.
 */

/** What is held: a socket's writes (net.Socket and tls.TLSSocket cork and uncork). */
export interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableLength: number;
  readonly destroyed: boolean;
}

interface Hold {
  readonly socket: Corkable;
  /** Requests of this terminal not yet answered. */
  count: number;
  readonly timer: NodeJS.Timeout;
}

/** Above this many bytes already queued, a hold would only add to a backlog: write at once. */
const BACKLOG_BYTES = 8 * 1024;

export class AckCoalescer {
  readonly #holds = new Map<string, Hold>();

  constructor(readonly maxHoldMs = 1000) {}

  /** A request from `terminalId` arrived on `socket`: hold its writes until `release`. */
  hold(terminalId: string, socket: Corkable): void {
    const held = this.#holds.get(terminalId);
    if (held && held.socket === socket) {
      held.count++;
      return;
    }
    if (held) this.#end(terminalId, held); // a new connection of the same terminal
    if (socket.destroyed || socket.writableLength > BACKLOG_BYTES) return;
    socket.cork();
    const timer = setTimeout(() => this.#end(terminalId, this.#holds.get(terminalId)), this.maxHoldMs);
    timer.unref();
    this.#holds.set(terminalId, { socket, count: 1, timer });
  }

  /** The reply to one of the terminal's requests was written (or will not be): write what is held once none is left. */
  release(terminalId: string): void {
    const held = this.#holds.get(terminalId);
    if (held && --held.count <= 0) this.#end(terminalId, held);
  }

  /** Terminals whose writes are held now. */
  get held(): number {
    return this.#holds.size;
  }

  releaseAll(): void {
    for (const [terminalId, held] of this.#holds) this.#end(terminalId, held);
  }

  #end(terminalId: string, held: Hold | undefined): void {
    if (!held || this.#holds.get(terminalId) !== held) return;
    this.#holds.delete(terminalId);
    clearTimeout(held.timer);
    if (!held.socket.destroyed) held.socket.uncork();
  }
}
