// The terminal's side of the hub over MQTT (hub/mqtt/README.md contract): CONNECT with a fresh
// single-use token per attempt, clean: false, a retained presence birth/will with a growing seq,
// TCP no-delay, requests QoS 1 on the terminal's request topic, replies matched by request id.
// Requests come from the durable outbox and are re-sent with the SAME bytes (same request id)
// until a hub-signed result arrives, on a schedule kept in memory (a retry tick reads only the
// envelopes due; a monotonic clock times it); on reconnect the whole outbox (including offline
// authorizations) and unacknowledged receipts are forwarded. Completion receipts likewise go
// out again until a hub-signed receipt.ack arrives: a PUBACK is delivery, never an answer.
// Nothing here decides: replies and announcements are handed to the runtime, which verifies and acts.
import { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { decodeMessage, makeConnectToken, topics, type Envelope } from '../../protocol/index.ts';
import type { TerminalStore } from '../store/terminal-store.ts';
import { hubStream, type HubTlsOptions } from './hub-stream.ts';

export const ANNOUNCEMENT_TYPES = ['announce.blocklist', 'announce.fares', 'announce.keys', 'announce.catalog', 'announce.products'] as const;
export type AnnouncementMessage = Envelope<(typeof ANNOUNCEMENT_TYPES)[number]>;
export type ReplyMessage = Envelope<'settlement.result' | 'error' | 'receipt.ack'>;

export interface HubClientOptions {
  url: string;
  terminalId: string;
  secretKey: Uint8Array;
  /** External broker: a fixed per-terminal password instead of a connect token. */
  password?: string;
  /** mqtts:// only: the CA the broker's certificate must chain to (hub.caFile); omitted: Node's default CAs. */
  tls?: HubTlsOptions;
  store: TerminalStore;
  log: Logger;
  /** Wall clock: only for protocol fields (connect token, presence time and seq). */
  clock: () => number;
  /**
   * Monotonic clock in ms for every re-send and probe timer (default `performance.now`): a wall
   * clock stepped back by NTP (a Pi boots with a stale time) would hold re-sends for as long.
   */
  monotonicMs?: () => number;
  /** Re-send an unanswered request after this long (same bytes). */
  retryMs: number;
  reconnectPeriodMs: number;
  onReply: (reply: ReplyMessage, raw: string) => void;
  onAnnouncement: (message: AnnouncementMessage) => void;
  onOnlineChange: (online: boolean) => void;
  /** While the hub's presence says down: how often the oldest open request goes out anyway (default HUB_DOWN_PROBE_MS). */
  hubDownProbeMs?: number;
}

/** Longest wait between CONNECT attempts the broker keeps refusing (the period doubles from hub.reconnectPeriodMs). */
export const MAX_REFUSED_RECONNECT_MS = 60_000;

/** Node's and OpenSSL's codes for a peer certificate that failed verification. */
const TLS_VERIFY_FAILURE = /^ERR_TLS_CERT|CERT_|_CERT$|SELF_SIGNED|ISSUER|SIGNATURE_FAILURE|HOSTNAME_MISMATCH|UNABLE_TO_VERIFY|INVALID_CA|CERT_CHAIN/;
/** Bound on re-sends per retry tick (TIGER_STYLE: a limit on everything). */
const MAX_SENDS_PER_TICK = 256;
/** The longest wait before setting a connection up again (subscribe, presence) after a failure. */
export const MAX_SETUP_RETRY_MS = 60_000;
/** Sends of one request at retryMs before the interval starts doubling. */
const RETRIES_BEFORE_BACKOFF = 3;
/** The longest wait between two sends of one request. */
export const MAX_RETRY_INTERVAL_MS = 5 * 60_000;
/** Sends after which a request the hub keeps not answering is logged as an error (once). */
export const ALERT_AFTER_SENDS = 10;
/** While the hub's presence says down: one uncounted send of the oldest open request this often. */
export const HUB_DOWN_PROBE_MS = 60_000;
/** The hub's presence has said down this long with requests waiting: logged as an error (once). */
export const HUB_DOWN_ALERT_MS = 15 * 60_000;

/**
 * How long after its last send a request goes out again, after `sends` sends while connected:
 * retryMs for the first few, then doubling up to MAX_RETRY_INTERVAL_MS, so a request the hub
 * keeps failing ("retry with the same request id") is not re-sent every second for ever.
 */
export function retryIntervalMs(sends: number, retryMs: number): number {
  const doublings = Math.min(30, Math.max(0, sends - RETRIES_BEFORE_BACKOFF));
  return Math.min(retryMs * 2 ** doublings, Math.max(retryMs, MAX_RETRY_INTERVAL_MS));
}

/** How long to wait before setting a connection up again after `failures` failed setups: doubling from periodMs. */
export function setupRetryMs(failures: number, periodMs: number): number {
  const doublings = Math.min(30, Math.max(0, failures - 1));
  return Math.min(periodMs * 2 ** doublings, Math.max(periodMs, MAX_SETUP_RETRY_MS));
}

/** One open request's re-sends: when its bytes last went out (monotonic ms; unset: due now) and how often (counted sends). */
interface RequestSends {
  lastSentMs: number | undefined;
  sends: number;
}

export class HubClient {
  private readonly client: MqttClient;
  private seq: number;
  private readonly monotonicMs: () => number;
  /**
   * The open requests' re-send schedule, oldest first, in memory (after a restart everything is
   * re-sent once): loaded from the outbox at every forward, added to by `send`, dropped by
   * `forget`. A retry tick reads from the store only the envelopes that are due.
   */
  private readonly requests = new Map<string, RequestSends>();
  /**
   * Sends not yet added to the outbox's attempt counts, written in one transaction per tick: the
   * count only paces re-sends after a restart and raises the alert, so a crash losing one tick's
   * worth costs nothing, while an fsync per send blocked the event loop for ~0.75 s a tick.
   */
  private readonly uncountedSends = new Map<string, number>();
  /** Receipts published and not yet acknowledged by the hub, re-sent like requests (monotonic ms). */
  private readonly unacknowledged = new Map<string, { envelope: string; lastSentMs: number; sends: number }>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Subscribed after the last CONNACK (cleared when the connection closes). */
  private linked = false;
  /** Counts CONNACKs: a setup (or its retry) of an earlier connection does not link this one. */
  private connection = 0;
  /** The next try at setting up the current connection, after a failed one. */
  private setupRetry: NodeJS.Timeout | undefined;
  /**
   * The hub's own retained presence (its will says offline): with an external broker the broker
   * can be up while the hub is down, and then the terminal must decide as offline, not wait.
   */
  private hubUp = true;
  private reportedOnline = false;
  /** While the hub looks down: since when, the last probe, and the request id it carried. */
  private hubDown: { sinceMs: number; probedMs: number; probes: number; probeId: string | undefined; alerted: boolean } | undefined;

  constructor(private readonly o: HubClientOptions) {
    this.monotonicMs = o.monotonicMs ?? (() => performance.now());
    this.seq = o.store.nextPresenceSeq(o.clock());
    const id = o.terminalId;
    this.client = new MqttClient(hubStream(o.url, o.tls), {
      protocolVersion: 4,
      clientId: id,
      clean: false,
      username: id,
      password: this.credentials(),
      will: this.will(),
      keepalive: 10,
      reconnectPeriod: o.reconnectPeriodMs,
      // A refused CONNECT (a token dated before the hub's restart by a lagging clock, a stale
      // token before NTP has synced, a revocation later lifted) is tried again with a new token:
      // MQTT.js would otherwise stop reconnecting for good, and the terminal stay offline.
      reconnectOnConnackError: true,
      connectTimeout: 5_000,
      resubscribe: true,
    });
    this.client.on('reconnect', () => {
      // A token is single use and expires; a new connection gets a new seq (Sparkplug B).
      this.seq = o.store.nextPresenceSeq(o.clock());
      this.client.options.password = this.credentials();
      this.client.options.will = this.will();
    });
    this.client.on('connect', () => {
      this.client.options.reconnectPeriod = o.reconnectPeriodMs;
      this.cancelSetupRetry();
      void this.setUpLink(++this.connection, 0);
    });
    this.client.on('close', () => {
      this.linked = false;
      this.cancelSetupRetry();
      this.reportOnline();
    });
    this.client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      // The broker refused this terminal, or its certificate failed verification: neither mends
      // itself in a second (a revoked key, a wrong caFile, a certificate for another name), so
      // retried ever more slowly, and said loudly.
      if (typeof code === 'number') {
        o.log.error({ err: err.message, returnCode: code, retryInMs: this.backOff() }, 'hub: CONNECT refused; retrying');
      } else if (typeof code === 'string' && TLS_VERIFY_FAILURE.test(code)) {
        o.log.error({ err: err.message, code, retryInMs: this.backOff() }, "hub: the broker's certificate was refused (check hub.caFile and the name in the hub's certificate)");
      } else {
        o.log.warn({ err: err.message }, 'hub: connection error');
      }
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.timer = setInterval(() => this.retryDue(), Math.max(50, Math.floor(o.retryMs / 4)));
    this.timer.unref();
  }

  /** Doubles the wait before the next CONNECT, from hub.reconnectPeriodMs up to MAX_REFUSED_RECONNECT_MS; the new wait. */
  private backOff(): number {
    const base = this.o.reconnectPeriodMs;
    const period = this.client.options.reconnectPeriod ?? base;
    this.client.options.reconnectPeriod = Math.min(Math.max(period, base) * 2, Math.max(base, MAX_REFUSED_RECONNECT_MS));
    return this.client.options.reconnectPeriod;
  }

  /** Connected to the broker, subscribed, and the hub itself is up. */
  get online(): boolean {
    return this.client.connected && this.linked && this.hubUp;
  }

  private reportOnline(): void {
    const online = this.online;
    if (online === this.reportedOnline) return;
    this.reportedOnline = online;
    this.o.onOnlineChange(online);
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

  /**
   * After a CONNACK: subscribe, follow the hub's presence, publish the birth; then the link is up
   * and the outbox goes out. A failed setup (a refused SUBACK, an ACL not loaded yet, a publish
   * error) would leave the connection up and the terminal deciding offline until it dropped, so
   * it is tried again on the same connection, ever more slowly, and logged each time; a new
   * connection starts over.
   */
  private async setUpLink(connection: number, failures: number): Promise<void> {
    const id = this.o.terminalId;
    try {
      await this.client.subscribeAsync([topics.reply(id), topics.allAnnouncements], { qos: 1 });
      await this.followHubPresence();
      await this.client.publishAsync(topics.presence(id), this.presence('online'), { qos: 1, retain: true });
    } catch (err) {
      if (!this.isCurrent(connection)) return; // the next CONNACK sets its own connection up
      const retryInMs = setupRetryMs(failures + 1, this.o.reconnectPeriodMs);
      this.o.log.error({ code: 'HUB_SETUP_FAILED', err: (err as Error).message, failures: failures + 1, retryInMs }, 'hub: subscribing after CONNACK failed; deciding offline, retrying');
      this.setupRetry = setTimeout(() => void this.setUpLink(connection, failures + 1), retryInMs);
      return;
    }
    if (!this.isCurrent(connection)) return;
    this.linked = true;
    this.o.log.info({ seq: this.seq, open: this.o.store.openCount(), hubUp: this.hubUp, failedSetups: failures }, 'hub: connected; forwarding outbox');
    this.reportOnline();
    this.forward();
  }

  /** The connection `connection` is still the client's, and up. */
  private isCurrent(connection: number): boolean {
    return !this.closed && this.client.connected && connection === this.connection;
  }

  private cancelSetupRetry(): void {
    clearTimeout(this.setupRetry);
    this.setupRetry = undefined;
  }

  /** Forward every unacknowledged receipt and open request (offline authorizations included). */
  private forward(): void {
    for (const r of this.o.store.pendingReceipts()) {
      // Receipts of requests the hub has not settled yet follow their result (runtime.onReply).
      if (this.o.store.receiptDeliverable(r.requestId)) this.publishReceipt(r.requestId, r.envelope);
    }
    this.loadRequests();
    this.retryDue();
  }

  /** The schedule afresh from the outbox: every open request due now, with its stored send count. */
  private loadRequests(): void {
    this.writeSendCounts();
    this.requests.clear();
    for (const r of this.o.store.openSends()) this.requests.set(r.requestId, { lastSentMs: undefined, sends: r.attempts });
  }

  /** The sends counted since the last write, added to the outbox's attempt counts (one transaction). */
  private writeSendCounts(): void {
    if (this.uncountedSends.size === 0) return;
    this.o.store.countAttempts(this.uncountedSends);
    this.uncountedSends.clear();
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === topics.hubPresence) return this.onHubPresence(payload);
    const raw = payload.toString('utf8');
    if (topic === topics.reply(this.o.terminalId)) {
      const d = decodeMessage(raw, ['settlement.result', 'error', 'receipt.ack']);
      if (!d.ok) {
        this.o.log.warn({ code: d.code, detail: d.detail }, 'hub: unreadable reply ignored');
        return;
      }
      // An answer to the probe: the hub is up whatever its retained presence says.
      if (this.hubDown?.probeId !== undefined && d.value.body.requestId === this.hubDown.probeId) this.hubIsUp('hub: the hub answered while its presence said down; going by its answers');
      this.o.onReply(d.value, raw);
      return;
    }
    if (payload.length === 0) return; // a cleared retained message
    const d = decodeMessage(raw, ANNOUNCEMENT_TYPES);
    if (!d.ok) {
      this.o.log.warn({ topic, code: d.code }, 'hub: unreadable announcement ignored');
      return;
    }
    this.o.onAnnouncement(d.value);
  }

  /**
   * Subscribed on its own: a broker whose ACL predates it (an older hub, Mosquitto files not
   * regenerated) refuses it, and then the terminal goes by its connection alone, as before.
   */
  private async followHubPresence(): Promise<void> {
    try {
      await this.client.subscribeAsync(topics.hubPresence, { qos: 1 });
    } catch (err) {
      this.hubUp = true;
      this.hubDown = undefined;
      this.o.log.warn({ err: (err as Error).message }, "hub: the broker refuses the hub's presence topic; going by the connection alone (upgrade the hub / regenerate the Mosquitto files)");
    }
  }

  /** The hub's retained presence `{ v: 1, state, time }`: offline while its will stands. */
  private onHubPresence(payload: Buffer): void {
    let state: unknown;
    try {
      state = (JSON.parse(payload.toString('utf8')) as { state?: unknown }).state;
    } catch {
      state = undefined;
    }
    if (state !== 'online' && state !== 'offline') return void this.o.log.warn({ bytes: payload.length }, 'hub: unreadable hub presence ignored');
    if (state === 'online') return this.hubIsUp('hub: the hub is back');
    if (!this.hubUp) return;
    this.hubUp = false;
    const now = this.monotonicMs();
    this.hubDown = { sinceMs: now, probedMs: now, probes: 0, probeId: undefined, alerted: false };
    this.o.log.warn({ hubUp: false }, 'hub: the hub is down (its broker is up): deciding offline');
    this.reportOnline();
  }

  private hubIsUp(why: string): void {
    const wasUp = this.hubUp;
    this.hubUp = true;
    this.hubDown = undefined;
    if (wasUp) return;
    this.o.log.warn({ hubUp: true }, why);
    this.reportOnline();
    if (this.linked) this.forward();
  }

  /**
   * While the hub's presence says down, the oldest open request goes out now and then anyway,
   * uncounted, ever more slowly (a copy each queues for a hub that is really down): a retained
   * "offline" can outlive a hub that is up (a hub from before presence, a re-publish that failed),
   * and a hub that answers the probe is up (onMessage). Held long with requests waiting, it is
   * said loudly: nothing else would (no send is counted meanwhile).
   */
  private probe(now: number): void {
    const down = this.hubDown;
    if (!down || now - down.probedMs < retryIntervalMs(down.probes, this.o.hubDownProbeMs ?? HUB_DOWN_PROBE_MS)) return;
    down.probedMs = now;
    const oldest = this.o.store.oldestOpen();
    if (!oldest) return;
    if (!down.alerted && now - down.sinceMs >= HUB_DOWN_ALERT_MS) {
      down.alerted = true;
      this.o.log.error({ downForMs: now - down.sinceMs, open: this.o.store.openCount() }, "hub: its presence has said down for long with requests waiting (is the hub running? its presence topic stale?)");
    }
    down.probes += 1;
    down.probeId = oldest.requestId;
    this.client.publish(topics.request(this.o.terminalId), oldest.envelope, { qos: 1 }, (err) => {
      if (err) this.o.log.warn({ requestId: oldest.requestId, err: err.message }, 'hub: probe publish failed');
    });
  }

  /**
   * Whether to publish now: the broker is connected and the hub itself is up. While the hub is
   * down behind a live broker, requests and receipts wait in the outbox, unsent and uncounted, and
   * go out when it is back (`forward`): re-sending meanwhile would only pile copies into the hub's
   * queue at the broker (Mosquitto drops past max_queued_messages), and count as sends the hub
   * failed to answer (backing the request off for minutes and raising the alert after the outage).
   */
  private get canSend(): boolean {
    return this.client.connected && this.hubUp;
  }

  /** Publish a persisted request now (QoS 1). The outbox row must exist first. */
  send(requestId: string, envelope: string): void {
    const request = this.requests.get(requestId) ?? { lastSentMs: undefined, sends: 0 };
    this.requests.set(requestId, request);
    request.lastSentMs = this.monotonicMs();
    if (!this.canSend) return; // forwarded when the broker and the hub are back
    request.sends += 1;
    this.uncountedSends.set(requestId, (this.uncountedSends.get(requestId) ?? 0) + 1);
    this.client.publish(topics.request(this.o.terminalId), envelope, { qos: 1 }, (err) => {
      if (err) this.o.log.warn({ requestId, err: err.message }, 'hub: publish failed; will retry');
    });
  }

  /**
   * Publish a question for the customer at the barrier (QoS 1, the request topic), once: not
   * persisted, not re-sent — it matters only within the machine's deadline of under a second, and
   * its id is never reused. False when it cannot go now (broker or hub down): the caller answers
   * for the hub at once.
   */
  ask(requestId: string, envelope: string): boolean {
    if (this.closed || !this.canSend) return false;
    this.client.publish(topics.request(this.o.terminalId), envelope, { qos: 1 }, (err) => {
      if (err) this.o.log.warn({ requestId, err: err.message }, 'hub: question not published');
    });
    return true;
  }

  /**
   * Publish a persisted completion receipt (QoS 1), and again every retry interval until the
   * runtime has verified the hub's receipt.ack (receiptAcknowledged): a hub that drops it while
   * overloaded or closing, or crashes before its refund is durable, gets it again.
   */
  publishReceipt(requestId: string, envelope: string): void {
    const sends = this.unacknowledged.get(requestId)?.sends ?? 0;
    const canSend = this.canSend;
    this.unacknowledged.set(requestId, { envelope, lastSentMs: this.monotonicMs(), sends: canSend ? sends + 1 : sends });
    if (!canSend) return; // forwarded when the broker and the hub are back
    this.client.publish(topics.receipt(this.o.terminalId), envelope, { qos: 1 }, (err) => {
      if (err) this.o.log.warn({ requestId, err: err.message }, 'hub: receipt publish failed; will retry');
    });
  }

  /** The hub's verified receipt.ack arrived: the receipt is done. */
  receiptAcknowledged(requestId: string): void {
    this.unacknowledged.delete(requestId);
    this.o.store.markReceiptAcknowledged(requestId);
  }

  /** The request has its result: no more re-sends. */
  forget(requestId: string): void {
    this.requests.delete(requestId);
  }

  /**
   * Re-send every open request whose last send is older than its retry interval — same id, same
   * bytes — and every unacknowledged receipt likewise, at most MAX_SENDS_PER_TICK in all: a long
   * offline backlog goes out in slices, oldest first, not all in one burst.
   */
  private retryDue(): void {
    if (this.closed || !this.client.connected) return;
    const now = this.monotonicMs();
    if (!this.hubUp) return this.probe(now);
    const sent = this.resendDueRequests(now, MAX_SENDS_PER_TICK);
    this.resendDueReceipts(now, MAX_SENDS_PER_TICK - sent);
    this.writeSendCounts();
  }

  /** At most `max` due requests re-sent, reading only their envelopes; how many went. */
  private resendDueRequests(now: number, max: number): number {
    const due = this.dueRequestIds(now, max);
    if (due.length === 0) return 0;
    const envelopes = this.o.store.openEnvelopes(due);
    let sent = 0;
    for (const requestId of due) {
      const envelope = envelopes.get(requestId);
      // Answered (or given up) without `forget`: nothing left to send.
      if (envelope === undefined) {
        this.requests.delete(requestId);
        continue;
      }
      const sends = this.requests.get(requestId)?.sends ?? 0;
      if (sends + 1 === ALERT_AFTER_SENDS) this.o.log.error({ requestId, sends: sends + 1 }, 'hub: request still without an answer; re-sent ever more slowly (is the hub failing it?)');
      this.send(requestId, envelope);
      sent += 1;
    }
    return sent;
  }

  /** The ids of at most `max` open requests due for a send at `now`, oldest first (memory only). */
  private dueRequestIds(now: number, max: number): string[] {
    const due: string[] = [];
    for (const [requestId, r] of this.requests) {
      if (due.length === max) break;
      if (r.lastSentMs === undefined || now - r.lastSentMs >= retryIntervalMs(r.sends, this.o.retryMs)) due.push(requestId);
    }
    return due;
  }

  private resendDueReceipts(now: number, max: number): void {
    let budget = max;
    for (const [requestId, r] of this.unacknowledged) {
      if (budget === 0) return;
      if (now - r.lastSentMs < retryIntervalMs(r.sends, this.o.retryMs)) continue;
      if (r.sends + 1 === ALERT_AFTER_SENDS) this.o.log.error({ requestId, sends: r.sends + 1 }, 'hub: receipt still not acknowledged; re-sent ever more slowly');
      this.publishReceipt(requestId, r.envelope);
      budget -= 1;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.cancelSetupRetry();
    this.writeSendCounts();
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
