/**
 * Terminal health from presence messages (Sparkplug B birth/death with a sequence number): an
 * `online` or `offline` older than the newest `seq` seen is ignored, so the late will of a dead
 * connection can't mark the terminal's newer session offline. Pure: time comes in as `nowMs`.
 */
import { Presence, type PresenceT } from '../../protocol/index.ts';

export interface TerminalHealth {
  readonly terminalId: string;
  readonly state: 'online' | 'offline';
  readonly seq: number;
  /** When the hub last heard anything from the terminal (request, receipt or presence). */
  readonly lastSeenMs: number;
  /** When `state` last changed. */
  readonly sinceMs: number;
}

export type PresenceOutcome = 'applied' | 'stale' | 'invalid';

/** The presence a payload carries for `terminalId`, or undefined (malformed, or naming another terminal). */
export function parsePresence(terminalId: string, payload: Uint8Array): PresenceT | undefined {
  try {
    const parsed = Presence.safeParse(JSON.parse(Buffer.from(payload).toString('utf8')));
    return parsed.success && parsed.data.terminalId === terminalId ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export class PresenceTracker {
  private readonly terminals = new Map<string, TerminalHealth>();

  constructor(private readonly maxTerminals = 100_000) {}

  /** Applies a presence payload received on `topics.presence(terminalId)`. */
  apply(terminalId: string, payload: Uint8Array, nowMs: number): PresenceOutcome {
    const msg = parsePresence(terminalId, payload);
    if (!msg) return 'invalid';
    const prev = this.terminals.get(terminalId);
    // Same seq: the will of the current session (offline) wins over its birth (online).
    if (prev && (msg.seq < prev.seq || (msg.seq === prev.seq && prev.state === 'offline'))) return 'stale';
    if (!prev && this.terminals.size >= this.maxTerminals) return 'invalid';
    this.terminals.set(terminalId, {
      terminalId,
      state: msg.state,
      seq: msg.seq,
      lastSeenMs: nowMs,
      sinceMs: prev && prev.state === msg.state ? prev.sinceMs : nowMs,
    });
    return 'applied';
  }

  /** Any message from the terminal proves it alive right now. */
  touch(terminalId: string, nowMs: number): void {
    const prev = this.terminals.get(terminalId);
    if (prev) this.terminals.set(terminalId, { ...prev, lastSeenMs: nowMs });
  }

  get(terminalId: string): TerminalHealth | undefined {
    return this.terminals.get(terminalId);
  }

  snapshot(): TerminalHealth[] {
    return [...this.terminals.values()].sort((a, b) => a.terminalId.localeCompare(b.terminalId));
  }
}
