/**
 * Files for an external Mosquitto 2.x broker, generated from the terminal directory: the config
 * (`set_tcp_nodelay true`: Mosquitto defaults to false, and Nagle costs a QoS 1 round trip
 * 44–88 ms on loopback), a password file in mosquitto_passwd's `$7$` format (PBKDF2-SHA512), and
 * an ACL file with the same rules the embedded broker enforces (acl.ts).
 * Mosquitto cannot check Ed25519 connect tokens, so each terminal gets a broker password the hub
 * derives from a secret, by the scheme the registry keeps for that terminal:
 * - 2 (terminals enrolled or reissued since 2026-12-02): from its current certificate,
 *   HMAC-SHA256(brokerSecret, "tapsettle/mqtt-password/v2" \n terminalId \n publicKey \n serial).
 *   Reissuing one terminal's certificate (a new serial) rotates its password alone.
 * - 1 (legacy: terminals enrolled before, until reissued): from its id alone,
 *   HMAC-SHA256(brokerSecret, "tapsettle/mqtt-password/" + terminalId), unchanged, so upgrading
 *   the hub changes no terminal's password (no fleet-wide flag day at the next mosquitto-files).
 */
import { createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { sync as writeFileAtomicSync } from 'write-file-atomic';
import { userInfo } from 'node:os';
import path from 'node:path';
import { MAX_MESSAGE_BYTES, TOPIC_ROOT, isLoopbackHost } from '../../protocol/index.ts';
import { assertReachable, assertReadable, canChown, giveTo, lookupBrokerAccount } from './broker-account.ts';
import { HUB_CLIENT_ID } from './hub-transport.ts';

/** The hub's own broker account; '@' can't occur in a terminal id, so it never collides with one. */
export const HUB_USERNAME = HUB_CLIENT_ID;

/**
 * How a terminal's broker password is derived (the registry's `terminals.broker_password_scheme`):
 * 1 = its id alone (enrolled before 2026-12-02, kept until its certificate is reissued), 2 = its
 * id and current certificate.
 */
export type BrokerPasswordScheme = 1 | 2;
/** What enrollment and `reissue-certificate` give a terminal. */
export const CURRENT_BROKER_PASSWORD_SCHEME = 2 satisfies BrokerPasswordScheme;

/**
 * What a terminal's broker password is derived from: its id, its current certificate (the key it
 * certifies and its serial) and its scheme, as the registry holds them (`registry.terminal(id)`).
 */
export interface BrokerPasswordSubject {
  readonly terminalId: string;
  /** The enrolled Ed25519 public key (64 lowercase hex chars). */
  readonly publicKey: string;
  /** The serial of the terminal's current certificate (a new one at every reissue). */
  readonly serial: string;
  /** 1: from the id alone (legacy); 2: from the id, key and serial. */
  readonly brokerPasswordScheme: BrokerPasswordScheme;
}

/** The terminals an external Mosquitto gets accounts for (revoked ones get none). */
export interface MosquittoDirectory {
  listTerminals(): Iterable<BrokerPasswordSubject & { readonly revoked: boolean }>;
}

/**
 * A terminal's password for an external Mosquitto, by its scheme. Scheme 2 is bound to its
 * certificate: a copied terminal.json is shut out by reissuing that one terminal's certificate
 * (or re-enrolling it with a new key) and rewriting the broker's files (`mosquitto-files`, then
 * SIGHUP), not by rotating the whole fleet's broker secret. Scheme 1 is the derivation of hubs
 * before 2026-12-02, byte for byte, for the terminals they enrolled; a reissue moves one to 2.
 */
export function brokerPasswordFor(brokerSecret: Uint8Array, subject: BrokerPasswordSubject): string {
  if (brokerSecret.length < 16) throw new TypeError('brokerPasswordFor: brokerSecret must be at least 16 bytes');
  const { terminalId, publicKey, serial, brokerPasswordScheme } = subject;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(terminalId)) throw new TypeError(`brokerPasswordFor: terminalId=${terminalId}`);
  if (!/^[0-9a-f]{64}$/.test(publicKey)) throw new TypeError('brokerPasswordFor: publicKey must be 64 lowercase hex chars');
  if (!/^[0-9a-f]{32,64}$/.test(serial)) throw new TypeError('brokerPasswordFor: serial must be a certificate serial (lowercase hex)');
  switch (brokerPasswordScheme) {
    case 1:
      return createHmac('sha256', brokerSecret).update(`tapsettle/mqtt-password/${terminalId}`).digest('hex');
    case 2:
      return createHmac('sha256', brokerSecret).update(`tapsettle/mqtt-password/v2\n${terminalId}\n${publicKey}\n${serial}`).digest('hex');
    default:
      throw new TypeError(`brokerPasswordFor: brokerPasswordScheme=${String(brokerPasswordScheme)} (expected 1 or 2)`);
  }
}

/** mosquitto_passwd's default: `$7$<iterations>$<base64 salt(12)>$<base64 PBKDF2-SHA512(64)>`. */
export function mosquittoPasswordHash(password: string, salt: Uint8Array = randomBytes(12), iterations = 101): string {
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `$7$${iterations}$${Buffer.from(salt).toString('base64')}$${hash.toString('base64')}`;
}

export interface MosquittoFilesOptions {
  /** Directory the files are written to. */
  readonly dir: string;
  readonly port: number;
  readonly host?: string;
  readonly directory: MosquittoDirectory;
  readonly brokerSecret: Uint8Array;
  readonly hubPassword: string;
  /**
   * Largest MQTT packet accepted from ANY client, the hub included: Mosquitto has no per-user
   * limit, and a packet over it disconnects its sender. So it must fit the hub's largest retained
   * announcement (the blocklist, up to 8 MiB; default: the protocol's largest message + 1 KiB);
   * the terminals' 32 KiB limit is then the hub's to enforce (it drops larger requests).
   */
  readonly maxPacketBytes?: number;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /**
   * The account Mosquitto runs as (its `user`): started as root it switches to it before reading
   * any of these files. Written as root, the folder and files are given to it; the certificate and
   * key must already be readable by it. Default: `mosquitto` (the Debian package's) when this
   * process is root, else this process's own account, for a Mosquitto this process starts (one
   * not started as root never switches).
   */
  readonly brokerUser?: string;
}

export interface MosquittoFiles {
  readonly configPath: string;
  readonly passwordPath: string;
  readonly aclPath: string;
  readonly logPath: string;
  readonly url: string;
  readonly hubUsername: string;
  readonly brokerUser: string;
  /** Written by someone else than root or the broker's account: the command that hands them over. */
  readonly chownCommand?: string;
  /** A plain-TCP listener beyond this machine: terminals' passwords and requests cross the network in clear. */
  readonly warning?: string;
  /**
   * The unrevoked terminals written with the legacy id-only password (scheme 1), sorted: each
   * moves to scheme 2 when its certificate is reissued (`reissue-certificate`).
   */
  readonly legacyPasswordTerminals: readonly string[];
}

/**
 * The ACL file ([mosquitto.conf(5)] acl_file). Each terminal's own topics are `pattern` lines on
 * `%u` (its username, the terminal id), one set for all. The topics every terminal reads alike
 * (announcements, the hub's presence) hold no `%u`: as `pattern` lines Mosquitto warns about each
 * at every (re)load ("ACL pattern … does not contain '%c' or '%u'"), and a `topic` line before any
 * `user` line is for anonymous clients only, so each enrolled terminal gets them as `topic read`
 * lines under its own `user` line.
 */
export function mosquittoAcl(terminalIds: readonly string[]): string {
  return [
    '# generated by tapsettle hub/mqtt/mosquitto-config.ts — do not edit',
    '# terminals (%u = username = terminal id): publish own request/receipt/presence, read own reply',
    `pattern write ${TOPIC_ROOT}/terminal/%u/request`,
    `pattern write ${TOPIC_ROOT}/terminal/%u/receipt`,
    `pattern write ${TOPIC_ROOT}/terminal/%u/presence`,
    `pattern read ${TOPIC_ROOT}/terminal/%u/reply`,
    '',
    '# the hub',
    `user ${HUB_USERNAME}`,
    `topic readwrite ${TOPIC_ROOT}/#`,
    '',
    "# each enrolled terminal: what every terminal reads (the hub's announcements and presence)",
    ...terminalIds.flatMap((id) => [`user ${id}`, `topic read ${TOPIC_ROOT}/hub/announce/#`, `topic read ${TOPIC_ROOT}/hub/presence`, '']),
  ].join('\n');
}

export function writeMosquittoFiles(options: MosquittoFilesOptions): MosquittoFiles {
  const host = options.host ?? '127.0.0.1';
  // An empty or short hub password hashed into passwd would open the hub's account (readwrite on
  // every topic): never written (mosquitto-credentials.ts refuses a damaged password file first).
  if (!/^\S{16,}$/.test(options.hubPassword)) throw new TypeError('writeMosquittoFiles: hubPassword must be at least 16 non-blank chars');
  // Checked before anything is written: a broker that cannot read its files would fail only at its
  // start (or, for a reload, keep running on the old ones).
  const account = lookupBrokerAccount(options.brokerUser ?? (canChown() ? 'mosquitto' : userInfo().username));
  if (options.tls) for (const f of [options.tls.certFile, options.tls.keyFile]) assertReadable(f, account);
  assertReachable(path.dirname(path.resolve(options.dir)), account);
  mkdirSync(options.dir, { recursive: true });
  const configPath = path.join(options.dir, 'mosquitto.conf');
  const passwordPath = path.join(options.dir, 'passwd');
  const aclPath = path.join(options.dir, 'acl');
  const logPath = path.join(options.dir, 'mosquitto.log');
  // Revoked terminals get no account: once the broker reloads (SIGHUP) it closes their open
  // sessions and refuses them at CONNECT.
  const enrolled = [...options.directory.listTerminals()].filter((t) => !t.revoked);
  const terminalIds = enrolled.map((t) => t.terminalId);
  const lines = [`${HUB_USERNAME}:${mosquittoPasswordHash(options.hubPassword)}`];
  // Each by its own scheme: a terminal enrolled before scheme 2 keeps the password it was given.
  for (const t of enrolled) lines.push(`${t.terminalId}:${mosquittoPasswordHash(brokerPasswordFor(options.brokerSecret, t))}`);
  const legacyPasswordTerminals = enrolled.filter((t) => t.brokerPasswordScheme === 1).map((t) => t.terminalId).sort();
  const maxPacketBytes = options.maxPacketBytes ?? MAX_MESSAGE_BYTES + 1024;
  const config = [
    '# generated by tapsettle hub/mqtt/mosquitto-config.ts — do not edit',
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${passwordPath}`,
    `acl_file ${aclPath}`,
    // Nagle + delayed ACK hold small request/reply packets for 40+ ms.
    'set_tcp_nodelay true',
    `max_packet_size ${maxPacketBytes}`,
    // The hub receives every request: no per-client in-flight cap of 20 in its way.
    'max_inflight_messages 0',
    'max_queued_messages 100000',
    // Deliberately off (README "A restart of the broker"): the hub republishes its retained state at
    // every reconnect and terminals re-send by request id, so nothing depends on the broker's store;
    // a saved store would be up to autosave_interval old after a crash anyway.
    'persistence false',
    `user ${account.name}`,
    `log_dest file ${logPath}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_type subscribe',
    'connection_messages true',
    `listener ${options.port} ${host}`,
    'protocol mqtt',
    // The client id is the username (the terminal id): one terminal can't take over another's
    // session, nor the hub's, by connecting with its client id. A listener's own setting: before
    // any `listener` line it would open a default listener on 1883.
    'use_username_as_clientid true',
    ...(options.tls ? [`certfile ${options.tls.certFile}`, `keyfile ${options.tls.keyFile}`] : []),
    '',
  ].join('\n');
  // Each file whole or not at all (written beside, then renamed over): a broker reloading (SIGHUP)
  // while they are rewritten reads the old file or the new one, never half of one. Written as root,
  // each is the broker account's from the start.
  const owner = canChown() ? { chown: { uid: account.uid, gid: account.gids[0] ?? account.uid } } : {};
  for (const [file, text] of [[passwordPath, `${lines.join('\n')}\n`], [aclPath, mosquittoAcl(terminalIds)], [configPath, config]] as const) {
    writeFileAtomicSync(file, text, { mode: 0o600, ...owner });
  }
  const written = {
    configPath,
    passwordPath,
    aclPath,
    logPath,
    url: `${options.tls ? 'mqtts' : 'mqtt'}://${host}:${options.port}`,
    hubUsername: HUB_USERNAME,
    brokerUser: account.name,
    legacyPasswordTerminals,
    ...(!options.tls && !isLoopbackHost(host)
      ? { warning: `plain TCP on ${host}: terminals' broker passwords and every request and reply cross the network unencrypted; give --tls-cert and --tls-key` }
      : {}),
  };
  // The folder too: Mosquitto creates its log there.
  if (canChown()) giveTo(account, [options.dir]);
  else if (process.getuid?.() !== account.uid) return { ...written, chownCommand: `chown -R ${account.name}: ${path.resolve(options.dir)}` };
  return written;
}
