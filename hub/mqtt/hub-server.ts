/**
 * The hub over MQTT (issue 4): an embedded aedes broker by default, or an external MQTT 3.1.1
 * broker by URL. Subscribes to every terminal's request, receipt and presence topics, hands each
 * request to the settlement service CONCURRENTLY (the engine group-commits per event-loop turn, so
 * requests must reach it together, not one by one), and publishes the hub-signed reply QoS 1 on
 * the terminal's reply topic. A PUBACK from the broker is delivery, never a decision: only the
 * signed reply is (seed 003 second signature).
 */
import pino, { type Logger } from 'pino';
import { MAX_TERMINAL_PAYLOAD_BYTES, isLoopbackHost, parseTerminalTopic, topics } from '../../protocol/index.ts';
import type { ConnectThrottleOptions } from './connect-throttle.ts';
import { startEmbeddedBroker, type EmbeddedBroker, type TlsServerOptions } from './embedded-broker.ts';
import { aedesTransport, externalTransport, type ExternalTransport, type HubTransport } from './hub-transport.ts';
import { presencePayloadOk } from './acl.ts';
import type { TlsClientOptions } from './no-delay-stream.ts';
import { PresenceTracker, type TerminalHealth } from './presence-tracker.ts';
import type { Announcement, SettlementHandler, TerminalLookup } from './types.ts';

export interface HubServerOptions {
  readonly service: SettlementHandler;
  /** Checks terminals at CONNECT on the embedded broker (an external broker uses its own files). */
  readonly directory: TerminalLookup;
  readonly logger?: Logger;
  /** Embedded broker: port to listen on (0 = a free port, the default). */
  readonly port?: number;
  /** Embedded broker: address to bind (default 127.0.0.1). */
  readonly host?: string;
  /** Embedded broker: serve MQTT over TLS. */
  readonly tls?: TlsServerOptions;
  /** Use an external broker instead of the embedded one. */
  readonly external?: {
    readonly url: string;
    readonly username: string;
    readonly password: string;
    readonly tls?: TlsClientOptions;
  };
  readonly clock?: () => number;
  readonly connectTokenMaxAgeMs?: number;
  /** Embedded broker: how often connected sessions are checked against the directory (default 30 s). */
  readonly revocationCheckMs?: number;
  /** Embedded broker: longest a request's PUBACK is held for its reply (default 1 s; hub/mqtt/ack-coalescer.ts). */
  readonly ackHoldMs?: number;
  /** Embedded broker: refused CONNECTs allowed per source address (hub/mqtt/connect-throttle.ts). */
  readonly connectThrottle?: ConnectThrottleOptions;
  /** Requests being handled at once; beyond it new ones are dropped (the terminal retries). */
  readonly maxInflight?: number;
  /**
   * Requests and receipts of ONE terminal being handled at once (default 1,000); beyond it its new
   * ones are dropped (it retries): one terminal flooding, enrolled or stolen, cannot take the whole
   * of maxInflight from the fleet.
   */
  readonly maxInflightPerTerminal?: number;
  /** close() waits at most this long for the requests being handled to be answered (default 5 s). */
  readonly drainMs?: number;
}

export interface HubServerStats {
  readonly requests: number;
  readonly receipts: number;
  readonly replies: number;
  readonly dropped: number;
  readonly failed: number;
  readonly inflight: number;
  /** Time inside the service per request (decode, verify, settle, sign), over the last 4096. */
  readonly serviceMsP50: number;
  readonly serviceMsP99: number;
}

const SERVICE_TIMES = 4096;
/** The hub's clear of a retained message comes back within this (else it is not waited for). */
const OWN_CLEAR_RETURN_MS = 10_000;

export interface HubServer {
  /** Where terminals connect (the embedded broker's URL, or the external broker's). */
  readonly url: string;
  /** The embedded broker's port (undefined with an external broker). */
  readonly port: number | undefined;
  presence(): TerminalHealth[];
  stats(): HubServerStats;
  /** Zeroes the counters and service times (e.g. between benchmark phases). */
  resetStats(): void;
  close(): Promise<void>;
}

export async function createHubServer(options: HubServerOptions): Promise<HubServer> {
  const log = (options.logger ?? pino({ level: 'info' })).child({ part: 'mqtt' });
  const clock = options.clock ?? Date.now;
  const maxInflight = options.maxInflight ?? 50_000;
  const maxInflightPerTerminal = options.maxInflightPerTerminal ?? 1_000;
  const tracker = new PresenceTracker();
  const service = options.service;
  const counters = { requests: 0, receipts: 0, replies: 0, dropped: 0, failed: 0, inflight: 0 };
  const serviceTimes = new Float64Array(SERVICE_TIMES);
  let serviceSamples = 0;
  const servicePercentile = (p: number) => {
    const n = Math.min(serviceSamples, SERVICE_TIMES);
    if (n === 0) return 0;
    const sorted = serviceTimes.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]!;
  };

  let embedded: EmbeddedBroker | undefined;
  const host = options.host ?? '127.0.0.1';
  let transport: HubTransport;
  let external: ExternalTransport | undefined;
  const hubPresence = (state: 'online' | 'offline') => Buffer.from(JSON.stringify({ v: 1, state, time: clock() }));
  if (options.external) {
    transport = external = await externalTransport({
      ...options.external,
      presence: { topic: topics.hubPresence, online: hubPresence('online'), offline: hubPresence('offline') },
      onDropped: (topic) => log.warn({ topic: topic.slice(0, 200) }, 'mqtt: message with no handler dropped (too many held)'),
      onLink: (event, err) => {
        if (event === 'lost') log.warn('mqtt: connection to the broker lost; reconnecting');
        else log.error({ err: err?.message, returnCode: typeof err?.code === 'number' ? err.code : undefined }, 'mqtt: cannot reach the broker; retrying');
      },
    });
  } else {
    embedded = await startEmbeddedBroker({
      directory: options.directory,
      logger: log,
      clock,
      host,
      port: options.port ?? 0,
      tls: options.tls,
      connectTokenMaxAgeMs: options.connectTokenMaxAgeMs,
      ackHoldMs: options.ackHoldMs,
      connectThrottle: options.connectThrottle,
    });
    transport = aedesTransport(embedded.broker);
  }
  const url = options.external ? options.external.url : embedded!.url;

  const publishReply = async (terminalId: string, reply: Uint8Array) => {
    await transport.publish(topics.reply(terminalId), reply, { qos: 1, retain: false });
    counters.replies++;
  };

  // Every request handed to the hub ends here, answered or not: its held PUBACK may go now.
  const settled = (terminalId: string, kind: 'request' | 'receipt') => {
    if (kind === 'request') embedded?.replied(terminalId);
  };
  const drop = (terminalId: string, kind: 'request' | 'receipt') => {
    counters.dropped++;
    settled(terminalId, kind);
  };

  /** Set by close(): messages arriving from then on are left to the terminals' retries. */
  let closing = false;
  const running = new Set<Promise<void>>();
  /** Per terminal: messages being handled, and whether it is at its cap (warned once per episode). */
  const inflightOf = new Map<string, number>();
  const capped = new Set<string>();
  const dispatch = async (terminalId: string, kind: 'request' | 'receipt', payload: Buffer) => {
    counters.inflight++;
    inflightOf.set(terminalId, (inflightOf.get(terminalId) ?? 0) + 1);
    try {
      if (kind === 'request') {
        const start = performance.now();
        const reply = await service.handleRequest(terminalId, payload);
        serviceTimes[serviceSamples++ % SERVICE_TIMES] = performance.now() - start;
        await publishReply(terminalId, reply);
      } else {
        const ack = await service.answerReceipt?.(terminalId, payload);
        if (ack) await publishReply(terminalId, ack);
      }
    } catch (err) {
      // The service answers every bad request with a signed rejection; a throw is a hub fault. No
      // reply: the terminal retries with the same request id once the fault is gone.
      counters.failed++;
      log.error({ terminalId, kind, err }, 'mqtt: handler failed; no reply sent');
    } finally {
      counters.inflight--;
      const left = (inflightOf.get(terminalId) ?? 1) - 1;
      if (left === 0) inflightOf.delete(terminalId);
      else inflightOf.set(terminalId, left);
      if (left < maxInflightPerTerminal) capped.delete(terminalId);
      settled(terminalId, kind);
    }
  };

  /** Empty retained messages the hub published to clear a request or receipt topic, not yet back: topic → times. */
  const ownClears = new Map<string, number[]>();
  const takeOwnClear = (topic: string, nowMs: number): boolean => {
    const pending = ownClears.get(topic)?.filter((atMs) => nowMs - atMs < OWN_CLEAR_RETURN_MS);
    const ours = pending !== undefined && pending.length > 0;
    if (ours) pending.shift();
    if (pending && pending.length > 0) ownClears.set(topic, pending);
    else ownClears.delete(topic);
    return ours;
  };

  const onTerminalMessage = (topic: string, payload: Buffer, retained: boolean) => {
    const parsed = parseTerminalTopic(topic);
    if (!parsed) return;
    const { terminalId, kind } = parsed;
    const nowMs = clock();
    if (payload.length === 0) {
      // An empty message is how a retained one is cleared: on a presence topic, nothing to do.
      if (kind !== 'request' && kind !== 'receipt') return;
      // The hub's own clear of a retained request or receipt (below) comes back to it, and live
      // with RETAIN 0 ([MQTT-3.3.1-9]): told apart by its topic, and never held by the broker.
      // Any other empty request is a malformed one, answered (signed) like any other below.
      if (takeOwnClear(topic, nowMs) || retained) return;
    }
    // The embedded broker refuses what the hub clears here at PUBLISH; Mosquitto's ACL only
    // knows topics, so the hub removes it from the broker's retained store itself.
    const clearRetained = (why: string) => {
      log.warn({ terminalId, kind, payloadBytes: payload.length, why }, 'mqtt: retained message ignored and cleared');
      if (kind !== 'presence') ownClears.set(topic, [...(ownClears.get(topic) ?? []), nowMs]);
      transport.publish(topic, new Uint8Array(0), { qos: 1, retain: true }).catch((err: unknown) => log.error({ topic, err }, 'mqtt: retained message not cleared'));
    };
    if (kind === 'presence') {
      // A terminal's presence is always retained: one that is not a small Presence of this terminal
      // would sit there for every dashboard and late subscriber.
      const ok = presencePayloadOk(terminalId, payload);
      if (!ok.ok) return clearRetained(ok.reason);
      const outcome = tracker.apply(terminalId, payload, nowMs);
      if (outcome === 'applied') log.info({ terminalId, state: tracker.get(terminalId)?.state, seq: tracker.get(terminalId)?.seq }, 'mqtt: presence');
      else log.debug({ terminalId, outcome }, 'mqtt: presence ignored');
      return;
    }
    if (kind !== 'request' && kind !== 'receipt') return;
    // Sent again at every subscribe, so never a request.
    if (retained) return clearRetained(`retained ${kind}`);
    tracker.touch(terminalId, nowMs);
    // The embedded broker refuses these; an external one lets them through (Mosquitto's packet
    // limit is one for all, and announcements are larger). The service answers a signed TOO_LARGE
    // from the length alone, so the terminal hears why instead of retrying into silence.
    if (payload.length > MAX_TERMINAL_PAYLOAD_BYTES) log.warn({ terminalId, kind, payloadBytes: payload.length }, 'mqtt: oversized message, answered TOO_LARGE');
    if (counters.inflight >= maxInflight) {
      log.warn({ terminalId, kind, inflight: counters.inflight }, 'mqtt: overloaded, message dropped (terminal will retry)');
      drop(terminalId, kind);
      return;
    }
    if ((inflightOf.get(terminalId) ?? 0) >= maxInflightPerTerminal) {
      if (!capped.has(terminalId)) log.warn({ terminalId, kind, inflight: maxInflightPerTerminal }, 'mqtt: terminal at its cap of messages in flight, its new ones dropped (it will retry)');
      capped.add(terminalId);
      drop(terminalId, kind);
      return;
    }
    if (closing) {
      log.debug({ terminalId, kind }, 'mqtt: closing, message left to the retry');
      drop(terminalId, kind);
      return;
    }
    if (kind === 'request') counters.requests++;
    else counters.receipts++;
    const handled = dispatch(terminalId, kind, payload);
    running.add(handled);
    void handled.finally(() => running.delete(handled));
  };

  const publishAnnouncement = (a: Announcement) =>
    transport.publish(a.topic, a.payload, { qos: 1, retain: true }).catch((err: unknown) => log.error({ topic: a.topic, err }, 'mqtt: announcement not published'));

  await Promise.all([
    transport.subscribe(topics.allRequests, onTerminalMessage),
    transport.subscribe(topics.allReceipts, onTerminalMessage),
    transport.subscribe(topics.allPresence, onTerminalMessage),
  ]);
  // Retained, so a terminal that connects later gets the current versions at once.
  await Promise.all((service.announcements?.() ?? []).map(publishAnnouncement));
  // An external broker may come back without them (restarted with `persistence false`, or crashed
  // since its last save: a present session says nothing about the retained store), and it has
  // published the hub's will: at EVERY reconnect the hub publishes its presence and the current
  // announcements again. Idempotent (same topics, latest bytes). What MQTT.js still had in flight
  // or queued from the outage goes out too, in publish order: each topic still ends on its latest.
  external?.onReconnect(({ sessionPresent }) => {
    if (closing) return;
    const announcements = service.announcements?.() ?? [];
    log.info({ sessionPresent, announcements: announcements.length }, 'mqtt: reconnected to the broker; retained state published again');
    transport.publish(topics.hubPresence, hubPresence('online'), { qos: 1, retain: true }).catch((err: unknown) => log.error({ err }, 'mqtt: hub presence not published'));
    for (const a of announcements) void publishAnnouncement(a);
  });
  // A revocation changes the keys announcement; sessions opened before it end then (and on a
  // timer, for directories that change without an announcement).
  const unsubscribeAnnouncements = service.onAnnouncement?.((a) => {
    void publishAnnouncement(a);
    embedded?.disconnectRevoked();
  });
  const revocationTimer = embedded ? setInterval(() => embedded!.disconnectRevoked(), options.revocationCheckMs ?? 30_000) : undefined;
  revocationTimer?.unref();
  if (embedded) await transport.publish(topics.hubPresence, hubPresence('online'), { qos: 1, retain: true });
  log.info({ url, external: Boolean(options.external) }, 'mqtt: hub ready');
  if (embedded && !options.tls && !isLoopbackHost(host)) {
    log.warn({ host }, 'mqtt: plain TCP beyond this machine: requests and replies (balances, statements) cross the network unencrypted; give the broker a TLS key and certificate (mqtt.tls)');
  }

  return {
    url,
    port: embedded?.port,
    presence: () => tracker.snapshot(),
    stats: () => ({ ...counters, serviceMsP50: servicePercentile(50), serviceMsP99: servicePercentile(99) }),
    resetStats() {
      Object.assign(counters, { requests: 0, receipts: 0, replies: 0, dropped: 0, failed: 0 });
      serviceSamples = 0;
    },
    async close() {
      if (closing) return;
      closing = true;
      if (typeof unsubscribeAnnouncements === 'function') (unsubscribeAnnouncements as () => void)();
      if (revocationTimer) clearInterval(revocationTimer);
      // Answer what is being handled before the broker goes: a settled request's reply is sent,
      // not left for a retry to fetch. Bounded, so a stuck handler can't hold up a shutdown.
      if (running.size > 0) {
        log.info({ inflight: running.size }, 'mqtt: closing, answering the requests in hand');
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          Promise.allSettled([...running]).then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), options.drainMs ?? 5000))),
        ]);
        clearTimeout(timer);
        if (!drained) log.warn({ inflight: running.size }, 'mqtt: closed with requests unanswered (terminals retry them)');
      }
      if (embedded) await transport.publish(topics.hubPresence, hubPresence('offline'), { qos: 1, retain: true }).catch(() => {});
      await transport.close();
      await embedded?.close();
    },
  };
}
