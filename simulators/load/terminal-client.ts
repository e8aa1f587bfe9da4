/**
 * A terminal's MQTT connection as hub/mqtt/README.md specifies it: client id = username =
 * terminal id, clean: false, a fresh single-use connect token per attempt, a retained presence
 * will with a growing seq, TCP no-delay. Used by the load generator and the hub's tests; it is
 * also the reference for terminal/ (which owns its own client).
 */
import { MqttClient } from 'mqtt';
import { makeConnectToken, topics } from '../../protocol/index.ts';
import { noDelayStreamBuilder, type TlsClientOptions } from '../../hub/mqtt/no-delay-stream.ts';

export interface TerminalClientOptions {
  readonly url: string;
  readonly terminalId: string;
  /** Embedded broker: the terminal's Ed25519 secret key signs a connect token per attempt. */
  readonly secretKey?: Uint8Array;
  /** External broker (or tests): a fixed password instead of a token. */
  readonly password?: string;
  readonly tls?: TlsClientOptions;
  readonly clock?: () => number;
  /** First presence seq; grows by one per (re)connection. Default: the clock. */
  readonly seq?: number;
  readonly subscribeAnnouncements?: boolean;
  readonly reconnectPeriodMs?: number;
  /** Override the client id (tests of a mismatching username). */
  readonly clientId?: string;
}

export interface TerminalClient {
  readonly client: MqttClient;
  /** The seq of the current connection's presence. */
  seq(): number;
  /** Publishes a request (QoS 1) and resolves with the reply whose body.requestId matches. */
  request(payload: Uint8Array, requestId: string, timeoutMs?: number): Promise<Buffer>;
  publishReceipt(payload: Uint8Array): Promise<void>;
  /** Every reply, including ones no request() waits for. */
  onReply(cb: (payload: Buffer) => void): void;
  /** Latest retained announcement per topic (with `subscribeAnnouncements`). */
  announcements(): ReadonlyMap<string, Buffer>;
  close(options?: { graceful?: boolean }): Promise<void>;
}

export function presencePayload(terminalId: string, state: 'online' | 'offline', seq: number, timeMs: number): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, terminalId, state, seq, time: timeMs }));
}

function requestIdOf(payload: Buffer): string | undefined {
  try {
    const msg = JSON.parse(payload.toString('utf8')) as { body?: { requestId?: unknown } };
    return typeof msg.body?.requestId === 'string' ? msg.body.requestId : undefined;
  } catch {
    return undefined;
  }
}

/** Connects and resolves after CONNACK, the reply subscription and the online presence; rejects if refused. */
export async function connectTerminal(options: TerminalClientOptions): Promise<TerminalClient> {
  const clock = options.clock ?? Date.now;
  const id = options.terminalId;
  let seq = options.seq ?? clock();
  const credentials = () => (options.secretKey ? makeConnectToken(id, options.secretKey, clock()) : options.password);
  const will = () => ({ topic: topics.presence(id), payload: presencePayload(id, 'offline', seq, clock()), qos: 1 as const, retain: true });
  const client = new MqttClient(noDelayStreamBuilder(options.url, options.tls), {
    protocolVersion: 4,
    clientId: options.clientId ?? id,
    clean: false,
    username: id,
    password: credentials(),
    will: will(),
    keepalive: 30,
    reconnectPeriod: options.reconnectPeriodMs ?? 1000,
    // A refused CONNECT is retried too (MQTT.js stops for good by default), with a fresh token
    // ('reconnect' below): right after a hub restart a token made a moment before the hub
    // started, by a client busy between making it and connecting, is refused as BEFORE_START.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
  });
  client.on('reconnect', () => {
    // A token is single use and expires: make a new one, and a new seq, for every attempt.
    seq += 1;
    client.options.password = credentials();
    client.options.will = will();
  });
  // Several requests may wait on one id (a resend): each reply answers the oldest waiter.
  const waiting = new Map<string, ((payload: Buffer) => void)[]>();
  const listeners: ((payload: Buffer) => void)[] = [];
  const announced = new Map<string, Buffer>();
  const announcePrefix = topics.allAnnouncements.slice(0, -1);
  const replyTopic = topics.reply(id);
  client.on('message', (topic, payload) => {
    if (topic.startsWith(announcePrefix)) announced.set(topic, payload);
    if (topic !== replyTopic) return;
    for (const l of listeners) l(payload);
    if (waiting.size === 0) return;
    const rid = requestIdOf(payload);
    const queue = rid === undefined ? undefined : waiting.get(rid);
    const resolve = queue?.shift();
    if (queue && queue.length === 0) waiting.delete(rid!);
    resolve?.(payload);
  });
  const announceOnline = async () => {
    await client.subscribeAsync(topics.reply(id), { qos: 1 });
    if (options.subscribeAnnouncements) await client.subscribeAsync(topics.allAnnouncements, { qos: 1 });
    await client.publishAsync(topics.presence(id), presencePayload(id, 'online', seq, clock()), { qos: 1, retain: true });
  };
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      client.end(true);
      reject(err);
    };
    client.once('error', fail);
    client.once('connect', () => {
      client.removeListener('error', fail);
      announceOnline().then(resolve, fail);
    });
  });
  client.on('error', () => {});
  client.on('connect', () => void announceOnline().catch(() => {}));

  return {
    client,
    seq: () => seq,
    request(payload, requestId, timeoutMs = 10_000) {
      return new Promise<Buffer>((resolve, reject) => {
        const waiter = (reply: Buffer) => {
          clearTimeout(timer);
          resolve(reply);
        };
        const forget = () => {
          const queue = waiting.get(requestId);
          const at = queue ? queue.indexOf(waiter) : -1;
          if (at >= 0) queue!.splice(at, 1);
          if (queue && queue.length === 0) waiting.delete(requestId);
        };
        const timer = setTimeout(() => {
          forget();
          reject(new Error(`request ${requestId}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        const queue = waiting.get(requestId);
        if (queue) queue.push(waiter);
        else waiting.set(requestId, [waiter]);
        client.publish(topics.request(id), Buffer.from(payload), { qos: 1 }, (err) => {
          if (err) {
            clearTimeout(timer);
            forget();
            reject(err);
          }
        });
      });
    },
    async publishReceipt(payload) {
      await client.publishAsync(topics.receipt(id), Buffer.from(payload), { qos: 1 });
    },
    onReply(cb) {
      listeners.push(cb);
    },
    announcements: () => announced,
    async close({ graceful = true } = {}) {
      if (graceful && client.connected) {
        await client.publishAsync(topics.presence(id), presencePayload(id, 'offline', seq, clock()), { qos: 1, retain: true }).catch(() => {});
        await client.endAsync();
      } else {
        // Drop the socket without DISCONNECT: the broker publishes the will.
        client.stream?.destroy();
        await client.endAsync(true);
      }
    },
  };
}
