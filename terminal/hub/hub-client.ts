// The terminal's side of the hub over MQTT (hub/mqtt/README.md contract): CONNECT with a fresh
// single-use token per attempt, clean: false, a retained presence birth/will with a growing seq,
// TCP no-delay, requests QoS 1 on the terminal's request topic, replies matched by request id.
// Requests come from the durable outbox and are re-sent with the SAME bytes (same request id)
// until a hub-signed result arrives; on reconnect the whole outbox (including offline
// authorizations) and unsent receipts are forwarded. Nothing here decides: replies and
// announcements are handed to the runtime, which verifies and acts.
import net from 'node:net';
import { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { decodeMessage, makeConnectToken, topics, type Envelope } from '../../protocol/index.ts';
import type { TerminalStore } from '../store/terminal-store.ts';

export type AnnouncementMessage = Envelope<'announce.blocklist' | 'announce.fares' | 'announce.keys' | 'announce.catalog'>;
export type ReplyMessage = Envelope<'settlement.result' | 'error'>;

export interface HubClientOptions {
  url: string;
  terminalId: string;
  secretKey: Uint8Array;
  /** External broker: a fixed per-terminal password instead of a connect token. */
  password?: string;
  store: TerminalStore;
  log: Logger;
  clock: () => number;
  /** Re-send an unanswered request after this long (same bytes). */
  retryMs: number;
  reconnectPeriodMs: number;
  onReply: (reply: ReplyMessage, raw: string) => void;
  onAnnouncement: (message: AnnouncementMessage) => void;
  onOnlineChange: (online: boolean) => void;
}

/** MQTT.js never sets TCP no-delay; without it a loopback QoS 1 round trip takes 44–88 ms. */
function noDelayStream(url: string): () => net.Socket {
  const u = new URL(url);
  if (u.protocol !== 'mqtt:' && u.protocol !== 'tcp:') throw new TypeError(`hub.url: only mqtt:// is supported here, got ${u.protocol}`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = u.port ? Number(u.port) : 1883;
  return () => net.connect({ host, port, noDelay: true });
}

/** Bound on re-sends per retry tick (TIGER_STYLE: a limit on everything). */
const MAX_SENDS_PER_TICK = 256;
/** Sends of one request at retryMs before the interval starts doubling. */
const RETRIES_BEFORE_BACKOFF = 3;
/** The longest wait between two sends of one request. */
export const MAX_RETRY_INTERVAL_MS = 5 * 60_000;
/** Sends after which a request the hub keeps not answering is logged as an error (once). */
export const ALERT_AFTER_SENDS = 10;

/**
 * How long after its last send a request goes out again, after `sends` sends while connected:
 * retryMs for the first few, then doubling up to MAX_RETRY_INTERVAL_MS, so a request the hub
 * keeps failing ("retry with the same request id") is not re-sent every second for ever.
 */
export function retryIntervalMs(sends: number, retryMs: number): number {
  const doublings = Math.min(30, Math.max(0, sends - RETRIES_BEFORE_BACKOFF));
  return Math.min(retryMs * 2 ** doublings, Math.max(retryMs, MAX_RETRY_INTERVAL_MS));
}

export class HubClient {
  private readonly client: MqttClient;
  private seq: number;
  /** requestId → last time its bytes went out (in memory: after a restart everything is re-sent once). */
  private readonly lastSentMs = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: HubClientOptions) {
    this.seq = o.store.nextPresenceSeq(o.clock());
    const id = o.terminalId;
    this.client = new MqttClient(noDelayStream(o.url), {
      protocolVersion: 4,
      clientId: id,
      clean: false,
      username: id,
      password: this.credentials(),
      will: this.will(),
      keepalive: 10,
      reconnectPeriod: o.reconnectPeriodMs,
      connectTimeout: 5_000,
      resubscribe: true,
    });
    this.client.on('reconnect', () => {
      // A token is single use and expires; a new connection gets a new seq (Sparkplug B).
      this.seq = o.store.nextPresenceSeq(o.clock());
      this.client.options.password = this.credentials();
      this.client.options.will = this.will();
    });
    this.client.on('connect', () => void this.onConnect());
    this.client.on('close', () => this.o.onOnlineChange(false));
    this.client.on('error', (err) => o.log.warn({ err: err.message }, 'hub: connection error'));
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.timer = setInterval(() => this.retryDue(), Math.max(50, Math.floor(o.retryMs / 4)));
    this.timer.unref();
  }

  get online(): boolean {
    return this.client.connected;
  }

  private credentials(): string {
    return this.o.password ?? makeConnectToken(this.o.terminalId, this.o.secretKey, this.o.clock());
  }

  private presence(state: 'online' | 'offline'): Buffer {
    return Buffer.from(JSON.stringify({ v: 1, terminalId: this.o.terminalId, state, seq: this.seq, time: this.o.clock() }));
  }

  private will() {
    return { topic: topics.presence(this.o.terminalId), payload: this.presence('offline'), qos: 1 as const, retain: true };
  }

  private async onConnect(): Promise<void> {
    const id = this.o.terminalId;
    try {
      await this.client.subscribeAsync([topics.reply(id), topics.allAnnouncements], { qos: 1 });
      await this.client.publishAsync(topics.presence(id), this.presence('online'), { qos: 1, retain: true });
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'hub: setup after CONNACK failed');
      return;
    }
    this.o.log.info({ seq: this.seq, open: this.o.store.openCount() }, 'hub: online; forwarding outbox');
    this.o.onOnlineChange(true);
    // Reconnect: forward every open request (offline authorizations included) and unsent receipts.
    this.lastSentMs.clear();
    this.retryDue();
    for (const r of this.o.store.pendingReceipts()) {
      // Receipts of requests the hub has not settled yet follow their result (runtime.onReply).
      if (this.o.store.get(r.requestId)?.state === 'done') this.publishReceipt(r.requestId, r.envelope);
    }
  }

  private onMessage(topic: string, payload: Buffer): void {
    const raw = payload.toString('utf8');
    if (topic === topics.reply(this.o.terminalId)) {
      const d = decodeMessage(raw, ['settlement.result', 'error']);
      if (!d.ok) {
        this.o.log.warn({ code: d.code, detail: d.detail }, 'hub: unreadable reply ignored');
        return;
      }
      this.o.onReply(d.value, raw);
      return;
    }
    if (payload.length === 0) return; // a cleared retained message
    const d = decodeMessage(raw, ['announce.blocklist', 'announce.fares', 'announce.keys', 'announce.catalog']);
    if (!d.ok) {
      this.o.log.warn({ topic, code: d.code }, 'hub: unreadable announcement ignored');
      return;
    }
    this.o.onAnnouncement(d.value);
  }

  /** Publish a persisted request now (QoS 1). The outbox row must exist first. */
  send(requestId: string, envelope: string): void {
    this.lastSentMs.set(requestId, this.o.clock());
    if (!this.client.connected) return; // forwarded on reconnect
    this.o.store.countAttempt(requestId);
    this.client.publish(topics.request(this.o.terminalId), envelope, { qos: 1 }, (err) => {
      if (err) this.o.log.warn({ requestId, err: err.message }, 'hub: publish failed; will retry');
    });
  }

  /** Publish a persisted completion receipt; marked sent once the broker has it (PUBACK). */
  publishReceipt(requestId: string, envelope: string): void {
    if (!this.client.connected) return;
    this.client.publish(topics.receipt(this.o.terminalId), envelope, { qos: 1 }, (err) => {
      if (!err && !this.closed) this.o.store.markReceiptSent(requestId);
    });
  }

  forget(requestId: string): void {
    this.lastSentMs.delete(requestId);
  }

  /** Re-send every open request whose last send is older than retryMs — same id, same bytes. */
  private retryDue(): void {
    if (this.closed || !this.client.connected) return;
    const now = this.o.clock();
    let budget = MAX_SENDS_PER_TICK;
    for (const e of this.o.store.open()) {
      const last = this.lastSentMs.get(e.requestId);
      if (last !== undefined && now - last < retryIntervalMs(e.attempts, this.o.retryMs)) continue;
      if (e.attempts + 1 === ALERT_AFTER_SENDS) {
        this.o.log.error({ requestId: e.requestId, sends: e.attempts + 1 }, 'hub: request still without an answer; re-sent ever more slowly (is the hub failing it?)');
      }
      this.send(e.requestId, e.envelope);
      // A long offline backlog goes out in slices, oldest first, not all in one burst.
      if (--budget === 0) return;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.client.connected) {
      await this.client.publishAsync(topics.presence(this.o.terminalId), this.presence('offline'), { qos: 1, retain: true }).catch(() => undefined);
    }
    await this.client.endAsync(true).catch(() => undefined);
  }

  /** Test hook: drop the socket without DISCONNECT (the broker publishes the will). */
  dropConnection(): void {
    this.client.stream?.destroy();
  }
}
