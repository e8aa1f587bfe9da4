/**
 * The hub's side of the broker, two ways: in-process on the embedded aedes broker (subscribe and
 * publish without a network hop, trusted), or as an MQTT.js client of an external broker.
 * Both deliver every message on a filter to one callback and publish QoS 1.
 */
import { MqttClient } from 'mqtt';
import type { Aedes, AedesPublishPacket } from 'aedes';
import { noDelayStreamBuilder, type TlsClientOptions } from './no-delay-stream.ts';
import { corkForTurn } from './turn-cork.ts';

/** `retained`: delivered from the broker's retained store (at subscribe), not published live. */
export type MessageHandler = (topic: string, payload: Buffer, retained: boolean) => void;

/** Messages an external broker delivers before any handler for them is registered: at most this many are held. */
export const MAX_EARLY_MESSAGES = 10_000;

export interface PublishOptions {
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

export interface HubTransport {
  subscribe(filter: string, onMessage: MessageHandler): Promise<void>;
  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void>;
  close(): Promise<void>;
}

export function aedesTransport(broker: Aedes): HubTransport {
  const subscriptions: { filter: string; deliver: (packet: AedesPublishPacket, cb: () => void) => void }[] = [];
  return {
    subscribe(filter, onMessage) {
      // Acknowledge to mqemitter at once: the handler runs concurrently, not one message at a time.
      const deliver = (packet: AedesPublishPacket, cb: () => void) => {
        cb();
        onMessage(packet.topic, packet.payload as Buffer, packet.retain);
      };
      subscriptions.push({ filter, deliver });
      return new Promise((resolve) => broker.subscribe(filter, deliver, resolve));
    },
    publish(topic, payload, options) {
      return new Promise((resolve, reject) =>
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), qos: options.qos, retain: options.retain, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    },
    async close() {
      await Promise.all(subscriptions.map((s) => new Promise<void>((resolve) => broker.unsubscribe(s.filter, s.deliver, resolve))));
    },
  };
}

export interface ExternalBrokerOptions {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly clientId?: string;
  readonly tls?: TlsClientOptions;
  /** A message no handler took, dropped because MAX_EARLY_MESSAGES were already held. */
  readonly onDropped?: (topic: string) => void;
  /**
   * The link to the broker after the first CONNACK: `lost` once per outage (MQTT.js reconnects on
   * its own), `error` for the first failed attempt of an outage (a refused CONNACK has a numeric
   * `code`), so an outage is told once, not every reconnect period.
   */
  readonly onLink?: (event: 'lost' | 'error', err?: Error & { code?: unknown }) => void;
  /** Retained state published when the hub connects; its will says the opposite. */
  readonly presence?: { readonly topic: string; readonly online: Uint8Array; readonly offline: Uint8Array };
}

export const HUB_CLIENT_ID = 'hub@tapsettle';

export interface ExternalTransport extends HubTransport {
  /**
   * Called at every CONNACK after the first one (MQTT.js reconnects on its own). The broker may
   * have lost its retained store (a restart without persistence, or a crash since its last save)
   * and has published the hub's will: the caller republishes its retained state. `sessionPresent`
   * is the CONNACK's flag (informational: it says nothing about the retained store, see hub-server.ts).
   */
  onReconnect(listener: (connack: { readonly sessionPresent: boolean }) => void): void;
}

/** Connects to an external MQTT 3.1.1 broker; resolves after the first CONNACK. */
export async function externalTransport(options: ExternalBrokerOptions): Promise<ExternalTransport> {
  const handlers: { filter: string; onMessage: MessageHandler }[] = [];
  const reconnectListeners: ((connack: { readonly sessionPresent: boolean }) => void)[] = [];
  // With clean: false the broker delivers what it queued for the hub's session right after
  // CONNACK, before subscribe() has registered a handler: held until one does, not dropped (MQTT.js
  // has acknowledged them already). Bounded; what no handler ever takes goes with the overflow.
  let early: { topic: string; payload: Buffer; retained: boolean }[] = [];
  const client = new MqttClient(noDelayStreamBuilder(options.url, options.tls), {
    protocolVersion: 4,
    clientId: options.clientId ?? HUB_CLIENT_ID,
    username: options.username,
    password: options.password,
    // The broker keeps the hub's subscriptions and queues requests while the hub restarts.
    clean: false,
    keepalive: 30,
    reconnectPeriod: 1000,
    // A refusal after the first CONNECT (the broker restarted before its password file was
    // regenerated) is retried: MQTT.js would otherwise stop reconnecting for good.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    will: options.presence
      ? { topic: options.presence.topic, payload: Buffer.from(options.presence.offline), qos: 1, retain: true }
      : undefined,
  });
  client.on('message', (topic, payload, packet) => {
    // Its PUBACK (sent by MQTT.js after this event) leaves with the turn's other writes.
    corkForTurn(client.stream);
    let taken = false;
    for (const h of handlers) {
      if (!topicMatches(h.filter, topic)) continue;
      taken = true;
      h.onMessage(topic, payload, packet.retain);
    }
    if (taken) return;
    if (early.length < MAX_EARLY_MESSAGES) early.push({ topic, payload, retained: packet.retain });
    else options.onDropped?.(topic);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      client.end(true);
      reject(err);
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.removeListener('error', onError);
      resolve();
    });
  });
  // Later errors are reconnect attempts: the first of each outage is told (onLink).
  let errorTold = false;
  client.on('error', (err) => {
    if (errorTold) return;
    errorTold = true;
    options.onLink?.('error', err);
  });
  client.on('offline', () => options.onLink?.('lost'));
  // Registered after the first CONNACK: every 'connect' from here on is a reconnect. MQTT.js emits
  // it once it has resent its unacknowledged publishes; its offline queue then goes out in order,
  // one at a time, and it subscribes again when the broker lost the session.
  client.on('connect', (connack) => {
    errorTold = false;
    for (const listener of reconnectListeners) listener({ sessionPresent: connack.sessionPresent });
  });
  if (options.presence) await client.publishAsync(options.presence.topic, Buffer.from(options.presence.online), { qos: 1, retain: true });
  return {
    onReconnect(listener) {
      reconnectListeners.push(listener);
    },
    async subscribe(filter, onMessage) {
      handlers.push({ filter, onMessage });
      const held = early.filter((m) => topicMatches(filter, m.topic));
      early = early.filter((m) => !topicMatches(filter, m.topic));
      for (const m of held) onMessage(m.topic, m.payload, m.retained);
      const granted = await client.subscribeAsync(filter, { qos: 1 });
      if (granted.some((g) => g.qos === 128)) throw new Error(`externalTransport: broker refused subscription to ${filter}`);
    },
    async publish(topic, payload, options) {
      corkForTurn(client.stream);
      await client.publishAsync(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), options);
    },
    async close() {
      if (options.presence) await client.publishAsync(options.presence.topic, Buffer.from(options.presence.offline), { qos: 1, retain: true }).catch(() => {});
      await client.endAsync();
    },
  };
}

/**
 * MQTT topic filter match ([MQTT-4.7]): '+' one level, '#' the rest (and the parent level:
 * `a/#` matches `a`). Walks both strings in place: it runs for every message and handler, and
 * splitting allocated two arrays of strings each time.
 */
export function topicMatches(filter: string, topic: string): boolean {
  let f = 0;
  let t = 0;
  for (;;) {
    const fEnd = levelEnd(filter, f);
    if (fEnd - f === 1 && filter.charCodeAt(f) === HASH) return true;
    if (t > topic.length) return false; // the topic has fewer levels
    const tEnd = levelEnd(topic, t);
    if (!(fEnd - f === 1 && filter.charCodeAt(f) === PLUS) && !sameLevel(filter, f, fEnd, topic, t, tEnd)) return false;
    if (fEnd === filter.length) return tEnd === topic.length;
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

const PLUS = 0x2b;
const HASH = 0x23;

function levelEnd(s: string, from: number): number {
  const i = s.indexOf('/', from);
  return i === -1 ? s.length : i;
}

function sameLevel(a: string, aFrom: number, aEnd: number, b: string, bFrom: number, bEnd: number): boolean {
  if (aEnd - aFrom !== bEnd - bFrom) return false;
  for (let i = 0; i < aEnd - aFrom; i++) if (a.charCodeAt(aFrom + i) !== b.charCodeAt(bFrom + i)) return false;
  return true;
}
