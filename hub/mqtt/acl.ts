/**
 * Per-terminal ACL (issue 4): a terminal publishes only on its own request, receipt and presence
 * topics and subscribes only to its own reply topic, the hub announcements and the hub's presence. Pure functions,
 * shared by the aedes hooks and the Mosquitto ACL generator's test.
 */
import { MAX_TERMINAL_PAYLOAD_BYTES, TOPIC_ROOT, parseTerminalTopic } from '../../protocol/index.ts';
import { parsePresence } from './presence-tracker.ts';

export type AclVerdict = { ok: true } | { ok: false; reason: string };

const ANNOUNCE_PREFIX = `${TOPIC_ROOT}/hub/announce/`;
const ANNOUNCE_ALL = `${TOPIC_ROOT}/hub/announce/#`;
/** The hub's retained presence: a terminal goes offline-capable while the hub's will stands. */
const HUB_PRESENCE = `${TOPIC_ROOT}/hub/presence`;

export function mayPublish(terminalId: string, topic: string, payloadBytes: number, retain: boolean): AclVerdict {
  if (payloadBytes > MAX_TERMINAL_PAYLOAD_BYTES) return { ok: false, reason: `payload ${payloadBytes} > ${MAX_TERMINAL_PAYLOAD_BYTES} bytes` };
  const parsed = parseTerminalTopic(topic);
  if (!parsed) return { ok: false, reason: 'not a terminal topic' };
  if (parsed.terminalId !== terminalId) return { ok: false, reason: 'topic of another terminal' };
  if (parsed.kind === 'reply') return { ok: false, reason: 'reply topics are the hub\'s' };
  // Presence must be retained (the dashboard and late subscribers read the last state); requests
  // and receipts must not be, or every restart of the hub would replay them.
  if (parsed.kind === 'presence' && !retain) return { ok: false, reason: 'presence must be retained' };
  if (parsed.kind !== 'presence' && retain) return { ok: false, reason: `retained ${parsed.kind}` };
  return { ok: true };
}

export function maySubscribe(terminalId: string, topicFilter: string): AclVerdict {
  if (topicFilter === ANNOUNCE_ALL || topicFilter === HUB_PRESENCE) return { ok: true };
  if (topicFilter.startsWith(ANNOUNCE_PREFIX) && !topicFilter.includes('+') && !topicFilter.includes('#')) return { ok: true };
  if (topicFilter.endsWith('/#') && topicFilter.startsWith(ANNOUNCE_PREFIX)) return { ok: true };
  const parsed = parseTerminalTopic(topicFilter);
  if (parsed && parsed.terminalId === terminalId && parsed.kind === 'reply') return { ok: true };
  return { ok: false, reason: "may subscribe only to its own reply topic, hub announcements and the hub's presence" };
}

/** A presence message is a few dozen bytes; the broker keeps it retained, so no more than this. */
export const MAX_PRESENCE_BYTES = 256;

/**
 * The payload of a presence (or its will) the broker may keep retained: a well-formed Presence
 * of the publishing terminal, small. Anything else would sit in the retained store for every
 * dashboard and late subscriber to read.
 */
export function presencePayloadOk(terminalId: string, payload: Uint8Array): AclVerdict {
  if (payload.length > MAX_PRESENCE_BYTES) return { ok: false, reason: `presence of ${payload.length} > ${MAX_PRESENCE_BYTES} bytes` };
  if (!parsePresence(terminalId, payload)) return { ok: false, reason: 'presence not a Presence of this terminal' };
  return { ok: true };
}
