/**
 * The embedded aedes broker with the terminal authentication and ACL hooks, served on TCP (or TLS
 * when given a key and certificate) with TCP no-delay on every accepted socket.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import type { Logger } from 'pino';
import { AckCoalescer } from './ack-coalescer.ts';
import { mayPublish, maySubscribe, presencePayloadOk } from './acl.ts';
import { ConnectAuthenticator } from './authenticator.ts';
import { ConnectThrottle, sourceKey, type ConnectThrottleOptions } from './connect-throttle.ts';
import type { TerminalLookup } from './types.ts';
import { MAX_TERMINAL_PAYLOAD_BYTES, parseTerminalTopic } from '../../protocol/index.ts';

export interface TlsServerOptions {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
}

export interface EmbeddedBrokerOptions {
  readonly directory: TerminalLookup;
  readonly logger: Logger;
  readonly clock: () => number;
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsServerOptions;
  readonly connectTokenMaxAgeMs?: number;
  /** Largest MQTT packet accepted (default: the terminal payload limit + 1 KiB for topic and header). */
  readonly maxPacketBytes?: number;
  /** Longest a request's PUBACK waits for the reply before it is written anyway (default 1 s). */
  readonly ackHoldMs?: number;
  /** Refused CONNECTs allowed per source address (hub/mqtt/connect-throttle.ts). */
  readonly connectThrottle?: ConnectThrottleOptions;
}

export interface EmbeddedBroker {
  readonly broker: Aedes;
  readonly server: net.Server;
  readonly url: string;
  readonly port: number;
  /**
   * The reply to one of the terminal's requests is written (or none will be): its PUBACK, held
   * since the request arrived, leaves with the reply (hub/mqtt/ack-coalescer.ts).
   */
  replied(terminalId: string): void;
  /** Disconnects sessions whose terminal is now revoked or unknown; returns their ids. */
  disconnectRevoked(): string[];
  close(): Promise<void>;
}

interface PacketParser {
  _parseLength(): boolean;
  _emitError(err: Error): unknown;
  packet: { length: number };
}

/**
 * Refuses a packet as soon as its fixed header announces a remaining length above the limit, before
 * its body is buffered ([MQTT-2.2.3] remaining length; mqtt-packet would otherwise buffer up to
 * 256 MiB). Hooks aedes' per-client mqtt-packet parser, which is not public API: returns false
 * when the internals are not there, and authorizePublish still refuses oversized payloads.
 */
export function limitPacketSize(client: Client, maxPacketBytes: number): boolean {
  const parser = (client as unknown as { _parser?: Partial<PacketParser> })._parser;
  if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') return false;
  const parseLength = parser._parseLength;
  parser._parseLength = function (this: PacketParser): boolean {
    const done = parseLength.call(this);
    if (done && this.packet.length > maxPacketBytes) {
      this._emitError(new Error(`packet of ${this.packet.length} bytes > ${maxPacketBytes}`));
      return false;
    }
    return done;
  };
  return true;
}

function notAuthorized(): AuthenticateError {
  // CONNACK return code 5: not authorized ([MQTT-3.2.2-3] table 3.1)
  return Object.assign(new Error('not authorized'), { returnCode: 5 as const });
}

/** The longest keepalive a client may ask for, in seconds (aedes `keepaliveLimit`). */
export const MAX_KEEPALIVE_S = 120;
/** aedes's CONNACK return code for a keepalive outside the limit (3.1.1 reserves 6 and above). */
const KEEPALIVE_REFUSED = 6;

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const log = options.logger;
  // Its nonce memory starts empty: tokens dated before now (captured before a restart) are refused.
  const auth = new ConnectAuthenticator(options.directory, options.connectTokenMaxAgeMs, undefined, options.clock());
  const acks = new AckCoalescer(options.ackHoldMs);
  const throttle = new ConnectThrottle(options.connectThrottle);
  const broker = await Aedes.createBroker({
    // mq deliveries in flight at once; the hub's handlers acknowledge immediately.
    concurrency: 10_000,
    maxClientsIdLength: 64,
    connectTimeout: 10_000,
    drainTimeout: 10_000,
    heartbeatInterval: 60_000,
    // A CONNECT without keepalive (0), or above 2 min, is refused (CONNACK 6): a half-open
    // connection then ends within 1.5 keepalives, its will fires and presence says offline.
    // Terminals use 10 s, the simulators 30 s.
    keepaliveLimit: MAX_KEEPALIVE_S,
    queueLimit: 64,
    authenticate(client, username, password, done) {
      const now = options.clock();
      const source = (client.conn as Partial<net.Socket>).remoteAddress;
      const who = { terminalId: username?.slice(0, 64), clientId: client.id.slice(0, 64), source };
      // Refused without a lookup or a signature check, and logged at debug: a flood costs little.
      if (!throttle.allows(source, now)) {
        log.debug({ ...who, reason: 'THROTTLED' }, 'mqtt: CONNECT refused');
        done(notAuthorized(), false);
        return;
      }
      const verdict = auth.check(client.id, username, password, now);
      if (verdict.ok) {
        log.info({ terminalId: username }, 'mqtt: terminal authenticated');
        done(null, true);
        return;
      }
      log.warn({ ...who, reason: verdict.reason }, 'mqtt: CONNECT refused');
      if (throttle.refused(source, now)) log.warn({ source: sourceKey(source), reason: 'THROTTLED' }, 'mqtt: too many refused CONNECTs from one source; refusing it until it slows down');
      done(notAuthorized(), false);
    },
    authorizePublish(client, packet, done) {
      const payloadBytes = packet.payload?.length ?? 0;
      // client is null only for the will of a session whose client is gone: presence only.
      const terminalId = client ? client.id : parseTerminalTopic(packet.topic)?.terminalId;
      let verdict = terminalId === undefined ? { ok: false as const, reason: 'no client' } : mayPublish(terminalId, packet.topic, payloadBytes, packet.retain);
      if (verdict.ok && parseTerminalTopic(packet.topic)?.kind === 'presence') verdict = presencePayloadOk(terminalId!, packet.payload as Buffer);
      // Terminals publish QoS 1 (README): a QoS 2 request would escape the PUBACK hold below yet
      // release another request's hold when answered.
      if (verdict.ok && packet.qos === 2) verdict = { ok: false, reason: 'QoS 2 (terminals publish at QoS 1)' };
      if (verdict.ok && (client || parseTerminalTopic(packet.topic)?.kind === 'presence')) {
        // Checked before aedes writes the PUBACK: hold it for the reply (see replied()).
        if (client && packet.qos === 1 && parseTerminalTopic(packet.topic)?.kind === 'request') acks.hold(client.id, client.conn);
        done(null);
        return;
      }
      const reason = verdict.ok ? 'orphan will outside presence' : verdict.reason;
      log.warn({ terminalId, topic: packet.topic.slice(0, 200), payloadBytes, reason }, 'mqtt: PUBLISH refused');
      done(new Error(`publish refused: ${reason}`));
    },
    authorizeSubscribe(client: Client, subscription, done) {
      const verdict = maySubscribe(client.id, subscription.topic);
      if (verdict.ok) {
        done(null, subscription);
        return;
      }
      log.warn({ terminalId: client.id, topic: subscription.topic.slice(0, 200), reason: verdict.reason }, 'mqtt: SUBSCRIBE refused');
      done(null, null); // SUBACK 0x80
    },
  });
  broker.on('clientError', (client, err) => {
    if (err.message.startsWith('packet of ')) log.warn({ terminalId: client.id, reason: err.message }, 'mqtt: oversized packet refused');
    else log.debug({ terminalId: client.id, err: err.message }, 'mqtt: client error');
  });
  broker.on('connectionError', (client, err) => {
    if ((err as { errorCode?: number }).errorCode === KEEPALIVE_REFUSED) log.warn({ clientId: client.id?.slice(0, 64), reason: `keepalive not within 1..${MAX_KEEPALIVE_S} s` }, 'mqtt: CONNECT refused');
    else log.debug({ clientId: client.id, err: err.message }, 'mqtt: connection error');
  });

  const maxPacketBytes = options.maxPacketBytes ?? MAX_TERMINAL_PAYLOAD_BYTES + 1024;
  let guardMissingLogged = false;
  const onSocket = (socket: net.Socket) => {
    socket.setNoDelay(true);
    const client = broker.handle(socket);
    if (!limitPacketSize(client, maxPacketBytes) && !guardMissingLogged) {
      guardMissingLogged = true;
      log.warn('mqtt: aedes parser internals changed; packet size is limited only after parsing (authorizePublish)');
    }
  };
  const server = options.tls
    ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
    : net.createServer({ noDelay: true }, onSocket);
  server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'mqtts' : 'mqtt'}://${hostForUrl === '0.0.0.0' ? '127.0.0.1' : hostForUrl}:${port}`;
  log.info({ url }, 'mqtt: embedded broker listening');
  return {
    broker,
    server,
    url,
    port,
    replied: (terminalId) => acks.release(terminalId),
    disconnectRevoked() {
      // aedes keeps connected clients in `clients` (id → Client); not in its typings.
      const clients = (broker as unknown as { clients: Record<string, Client> }).clients;
      const kicked: string[] = [];
      for (const [id, client] of Object.entries(clients)) {
        const terminal = options.directory.lookupTerminal(id);
        if (terminal && !terminal.revoked) continue;
        kicked.push(id);
        log.warn({ terminalId: id, reason: terminal ? 'REVOKED' : 'UNKNOWN_TERMINAL' }, 'mqtt: session closed');
        client.close();
      }
      return kicked;
    },
    async close() {
      acks.releaseAll();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // closeAllConnections exists on http servers only; aedes closed its clients above.
      });
    },
  };
}
