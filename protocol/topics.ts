/**
 * MQTT 3.1.1 topic names (aedes speaks 3.1.1). A terminal publishes on its own request, receipt
 * and presence topics and subscribes to its own reply topic and the hub's announcements; the
 * broker's ACL enforces exactly that.
 */
export const TOPIC_ROOT = 'tapsettle/v1';

const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

function terminalBase(terminalId: string): string {
  // '/', '+', '#' in an id would let a terminal address another's topics.
  if (!SAFE_ID.test(terminalId)) throw new TypeError(`topics: invalid terminalId ${JSON.stringify(terminalId)}`);
  return `${TOPIC_ROOT}/terminal/${terminalId}`;
}

export const topics = {
  request: (terminalId: string) => `${terminalBase(terminalId)}/request`,
  receipt: (terminalId: string) => `${terminalBase(terminalId)}/receipt`,
  reply: (terminalId: string) => `${terminalBase(terminalId)}/reply`,
  presence: (terminalId: string) => `${terminalBase(terminalId)}/presence`,
  /** Retained, hub-signed: blocklist, fares, keys, ticket products, catalog/<merchantId>. */
  announce: (kind: 'blocklist' | 'fares' | 'keys' | 'products') => `${TOPIC_ROOT}/hub/announce/${kind}`,
  catalog: (merchantId: string) => {
    if (!SAFE_ID.test(merchantId)) throw new TypeError(`topics: invalid merchantId ${JSON.stringify(merchantId)}`);
    return `${TOPIC_ROOT}/hub/announce/catalog/${merchantId}`;
  },
  hubPresence: `${TOPIC_ROOT}/hub/presence`,
  /** Hub-side wildcard subscriptions. */
  allRequests: `${TOPIC_ROOT}/terminal/+/request`,
  allReceipts: `${TOPIC_ROOT}/terminal/+/receipt`,
  allPresence: `${TOPIC_ROOT}/terminal/+/presence`,
  allAnnouncements: `${TOPIC_ROOT}/hub/announce/#`,
} as const;

export type TerminalTopicKind = 'request' | 'receipt' | 'reply' | 'presence';

const TERMINAL_PREFIX = `${TOPIC_ROOT}/terminal/`;

/** Parses `tapsettle/v1/terminal/<id>/<kind>`; null for anything else. */
export function parseTerminalTopic(topic: string): { terminalId: string; kind: TerminalTopicKind } | null {
  // Sliced in place, not split: the hub parses the topic of every message it receives.
  if (!topic.startsWith(TERMINAL_PREFIX)) return null;
  const slash = topic.indexOf('/', TERMINAL_PREFIX.length);
  if (slash === -1) return null;
  const terminalId = topic.slice(TERMINAL_PREFIX.length, slash);
  if (!SAFE_ID.test(terminalId)) return null;
  const kind = topic.slice(slash + 1);
  if (kind !== 'request' && kind !== 'receipt' && kind !== 'reply' && kind !== 'presence') return null;
  return { terminalId, kind };
}

/** Largest payload the broker accepts from a terminal (a settlement request is ≤ 16 KiB). */
export const MAX_TERMINAL_PAYLOAD_BYTES = 32 * 1024;
