/**
 * Holds a stream's writes until the end of the event-loop turn, so everything the hub writes to
 * an external broker in one turn (the PUBACKs of the requests that arrived, a batch's replies)
 * leaves in one `writev`. On loopback a send also runs the receiver's TCP input in the sender's
 * syscall, and the broker wakes once per segment: one segment per turn instead of one per packet.
 * A PUBACK held for the rest of a turn changes nothing a terminal may act on (it is delivery,
 * never a decision).
 */

/** What is held (net.Socket and tls.TLSSocket cork and uncork). */
export interface TurnCorkable {
  cork(): void;
  uncork(): void;
  readonly destroyed: boolean;
}

const corked = new WeakSet<TurnCorkable>();

/** Corks `stream` until the next setImmediate; a second call in the same turn does nothing. */
export function corkForTurn(stream: TurnCorkable | undefined): void {
  if (stream === undefined || stream.destroyed || corked.has(stream)) return;
  corked.add(stream);
  stream.cork();
  setImmediate(() => {
    corked.delete(stream);
    if (!stream.destroyed) stream.uncork();
  });
}
