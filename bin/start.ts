/**
 * `npm start`: the whole system on one machine — hub (SQLite ledger in ./data/hub, embedded MQTT
 * broker on a free port), operator dashboard, a simulated site (two gates, a vending machine, a
 * POS: real terminal runtimes on emulated hardware) and simulated customers. Prints the dashboard
 * URL; Ctrl-C stops everything cleanly. Re-running reuses the data folder.
 * With `--config hub.json` the same entry runs a production hub for real kiosks: the demo site is
 * off there unless the file says `"site": { "enabled": true }`.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Demo, DemoOptions } from '../simulators/fleet/demo.ts';
import { noDelayStreamBuilder, parseBrokerUrl } from '../hub/mqtt/no-delay-stream.ts';
import { InputError } from '../hub/service/input-error.ts';
import { HubConfigError, loadHubConfigFile, parseHubConfig, ZERO_CONFIG, type HubConfig } from './hub-config.ts';

const USAGE = `usage: npm start -- [options]
   (that is: node --max-semi-space-size=64 --initial-old-space-size=1024 --import tsx bin/start.ts [options];
    keep both V8 flags when you start the hub another way, e.g. from a systemd unit: README, "npm start")

  --config FILE      hub config file (JSON; see README "Configuration")
  --data-dir DIR     hub data folder (ledger, registry, keys)      default ./data/hub
  --port N           dashboard port; 0 = any free port             default 4600 (a free port if taken)
  --mqtt-port N      embedded MQTT broker port; 0 = any free port  default 0
  --host ADDR        address the embedded broker binds (the dashboard stays where
                     dashboard.host says)                          default 127.0.0.1
  --rate N           simulated customer actions per second         default 5
  --no-customers     start the site without simulated customers
  --no-site          hub, broker and dashboard only (real kiosks connect)
  --terminal-mode M  runtime: real terminal runtimes with the PN532 emulator and the
                     virtual IO board; direct: protocol-only terminals   default runtime
  --log-level LEVEL  pino level for the log on stderr             default warn
  -h, --help         this text`;

function fail(message: string): never {
  console.error(`tapsettle start: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function numberOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^-?\d+(\.\d+)?$/.test(raw)) fail(`--${name} must be a number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) fail(`--${name} must be between ${min} and ${max}, got ${raw}`);
  return value;
}

/** The options that take a number: a negative one after them is their value, for its range to be told. */
const NUMBER_OPTIONS = new Set(['--port', '--mqtt-port', '--rate']);

/**
 * node:util's parseArgs takes `--rate -1` for an option without its value ("argument is
 * ambiguous"): a negative number after a number option is joined to it (`--rate=-1`), so the
 * range check says what is wrong with it.
 */
function joinNegativeNumbers(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (NUMBER_OPTIONS.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** parseArgs' own messages, in this command's words. */
function usageMessage(err: unknown, argv: readonly string[], options: Readonly<Record<string, { type: string; short?: string }>>): string {
  const message = err instanceof Error ? err.message : String(err);
  const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
  if (ambiguous) {
    const option = ambiguous[1]!;
    const next = argv[argv.indexOf(option) + 1] ?? '';
    const known = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]);
    return known.includes(next.split('=')[0]!)
      ? `${option} needs a value, got the option ${next}`
      : `${option} ${next}: a value that starts with "-" is written ${option}=${next}`;
  }
  const missing = /^Option '(--[\w-]+) <value>' argument missing/.exec(message);
  if (missing) return `${missing[1]} needs a value`;
  return message.split('\n')[0]!;
}

const OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  port: { type: 'string' },
  'mqtt-port': { type: 'string' },
  host: { type: 'string' },
  rate: { type: 'string' },
  'no-customers': { type: 'boolean' },
  'no-site': { type: 'boolean' },
  'terminal-mode': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse() {
  const args = joinNegativeNumbers(process.argv.slice(2));
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    fail(usageMessage(err, args, OPTIONS));
  }
}

/** The config file (or defaults), then the command-line flags on top. */
function resolveConfig(args: ReturnType<typeof parse>): HubConfig {
  let base: HubConfig;
  try {
    base = args.config !== undefined ? loadHubConfigFile(args.config) : parseHubConfig(ZERO_CONFIG);
  } catch (err) {
    if (err instanceof HubConfigError) fail(err.message);
    throw err;
  }
  const mode = args['terminal-mode'];
  if (mode !== undefined && mode !== 'runtime' && mode !== 'direct') fail(`--terminal-mode must be runtime or direct, got "${mode}"`);
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
  const level = args['log-level'];
  if (level !== undefined && !(levels as readonly string[]).includes(level)) fail(`--log-level must be one of ${levels.join(', ')}`);
  const port = numberOption('port', args.port, 0, 65535);
  const mqttPort = numberOption('mqtt-port', args['mqtt-port'], 0, 65535);
  const rate = numberOption('rate', args.rate, 0.1, 1000);
  const mqtt =
    base.mqtt.kind === 'embedded'
      ? { ...base.mqtt, ...(args.host !== undefined ? { host: args.host } : {}), ...(mqttPort !== undefined ? { port: mqttPort } : {}) }
      : base.mqtt;
  try {
    return parseHubConfig({
      ...base,
      ...(args['data-dir'] !== undefined ? { dataDir: args['data-dir'] } : {}),
      mqtt,
      // --host is the broker's address only: the dashboard has no authentication, so it moves off
      // loopback only where its own config says so.
      dashboard: { ...base.dashboard, ...(port !== undefined ? { port } : {}) },
      log: { level: level ?? base.log.level },
      site: {
        enabled: args['no-site'] ? false : base.site.enabled,
        customersPerS: args['no-customers'] ? 0 : (rate ?? base.site.customersPerS),
        terminalMode: mode ?? base.site.terminalMode,
      },
    });
  } catch (err) {
    if (err instanceof HubConfigError) fail(err.message);
    throw err;
  }
}

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/** A file the config names (TLS key/cert, CA, broker password), read before anything starts; unreadable: exit 2 naming the field. */
function configFile(field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    fail(`${field}: cannot read ${file}: ${errCode(err)}`);
  }
}

/** The PEM files the config names, checked for what they must hold (a key, a certificate, the pair matching). */
function readConfigFiles(config: HubConfig): Pick<DemoOptions, 'mqttTls' | 'externalMqtt'> {
  const mqtt = config.mqtt;
  if (mqtt.kind === 'embedded') {
    if (!mqtt.tls) return {};
    const key = configFile('mqtt.tls.keyFile', mqtt.tls.keyFile);
    const cert = configFile('mqtt.tls.certFile', mqtt.tls.certFile);
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch {
      fail(`mqtt.tls.keyFile: no PEM private key in ${mqtt.tls.keyFile}`);
    }
    let x509;
    try {
      x509 = new X509Certificate(cert);
    } catch {
      fail(`mqtt.tls.certFile: no PEM certificate in ${mqtt.tls.certFile}`);
    }
    if (!x509.checkPrivateKey(privateKey)) fail(`mqtt.tls.keyFile: ${mqtt.tls.keyFile} is not the key of mqtt.tls.certFile ${mqtt.tls.certFile}`);
    return { mqttTls: { key, cert } };
  }
  const password = configFile('mqtt.passwordFile', mqtt.passwordFile).toString('utf8').trim();
  if (password === '') fail(`mqtt.passwordFile: ${mqtt.passwordFile} is empty`);
  let ca: Buffer | undefined;
  if (mqtt.caFile) {
    ca = configFile('mqtt.caFile', mqtt.caFile);
    try {
      new X509Certificate(ca);
    } catch {
      fail(`mqtt.caFile: no PEM certificate in ${mqtt.caFile}`);
    }
  }
  return { externalMqtt: { url: mqtt.url, username: mqtt.username, password, ...(ca ? { tls: { ca } } : {}) } };
}

/**
 * The data folder must be a directory the hub can write, or creatable: checked before anything
 * is created, so a typo names the field and exits 2 instead of failing half-way.
 */
function checkDataDir(field: string, dataDir: string): void {
  for (let dir = dataDir; ; dir = dirname(dir)) {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOENT' || code === 'ENOTDIR') && dirname(dir) !== dir) continue;
      fail(`${field}: cannot use ${dataDir}: ${dir === dataDir ? '' : `${dir}: `}${errCode(err)}`);
    }
    if (!isDir) fail(`${field}: cannot use ${dataDir}: ${dir === dataDir ? 'not a directory' : `${dir} is not a directory`}`);
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      fail(`${field}: cannot use ${dataDir}: ${dir === dataDir ? '' : `${dir}: `}${errCode(err)}`);
    }
    return;
  }
}

/** A port the config or a flag names: where it comes from, for a refusal to name. */
interface PortSetting {
  /** `mqtt.port` / `dashboard.port` (from the config file or its default) or the flag that set it. */
  readonly field: string;
  /** The command-line flag that overrides the config's field. */
  readonly flag: '--mqtt-port' | '--port';
  /** The config field (or flag) of the address it binds. */
  readonly hostField: string;
  readonly host: string;
  readonly port: number;
}

/** Binds host:port and holds it (the caller closes it), or the bind's error. */
function bindProbe(host: string, port: number): Promise<net.Server | NodeJS.ErrnoException> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => resolve(server));
  });
}

const closeServer = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** Why `s` cannot be bound, in the operator's words: the field, and the flag that overrides it. */
function bindRefusal(s: PortSetting, err: NodeJS.ErrnoException, configFile: string | undefined): string {
  const where = `${s.host}:${s.port}`;
  const fromFlag = s.field === s.flag;
  const instead = fromFlag ? `choose another ${s.flag} (0 = any free port)` : `set another ${s.field}${configFile !== undefined ? ` in ${configFile}` : ''}, or override it with ${s.flag} N (0 = any free port)`;
  if (err.code === 'EADDRINUSE') {
    const who = s.port === 1883 ? " (a Mosquitto? Debian's mosquitto.service holds 1883)" : s.port === 8883 ? ' (a Mosquitto?)' : '';
    return `${s.field}: ${where} is already in use by another program${who}: stop it, or ${instead}`;
  }
  if (err.code === 'EACCES') return `${s.field}: cannot bind ${where}: EACCES (a port below 1024 needs privileges): ${instead}`;
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
    return `${s.hostField}: cannot bind ${where}: ${err.code} (${s.host} is not an address of this machine)`;
  }
  return `${s.field}: cannot bind ${where}: ${errCode(err)}`;
}

/**
 * The ports the config or the flags name (a free port, 0, needs no check) are bound and let go
 * before anything is created: a port another program holds is refused naming its field and flag
 * (exit 2) instead of failing half-way, after a new hub's keys and ledger were made. The broker's
 * port stays held while the dashboard's is tried, as at the real start: one port named twice is
 * refused too. Returns the settings whose port is taken, for `npm start`'s default dashboard port.
 */
async function checkPorts(settings: readonly PortSetting[], configFile: string | undefined, mayTake: (s: PortSetting) => boolean): Promise<PortSetting[]> {
  const held: net.Server[] = [];
  const taken: PortSetting[] = [];
  try {
    for (const s of settings) {
      if (s.port === 0) continue;
      const r = await bindProbe(s.host, s.port);
      if (r instanceof net.Server) held.push(r);
      else if (r.code === 'EADDRINUSE' && mayTake(s)) taken.push(s);
      else fail(`${bindRefusal(s, r, configFile)}; nothing was started or created`);
    }
  } finally {
    await Promise.all(held.map(closeServer));
  }
  return taken;
}

/** How long reaching an external broker may take (the hub's own connect timeout). */
const BROKER_PROBE_TIMEOUT_MS = 10_000;

/**
 * Opens a connection to the external broker (TLS verified as the hub's own connection is) and
 * closes it: a broker that is down, or a name that does not resolve, is refused naming mqtt.url
 * before anything is created.
 */
function reachBroker(url: string, ca: Buffer | undefined): Promise<NodeJS.ErrnoException | undefined> {
  const secure = parseBrokerUrl(url).tls;
  const socket = noDelayStreamBuilder(url, ca ? { ca } : {})() as net.Socket;
  return new Promise((resolve) => {
    const done = (err?: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => done(Object.assign(new Error(`no connection within ${BROKER_PROBE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })), BROKER_PROBE_TIMEOUT_MS);
    socket.once(secure ? 'secureConnect' : 'connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(err));
  });
}

function brokerRefusal(url: string, err: NodeJS.ErrnoException): string {
  const hint =
    err.code === 'ECONNREFUSED'
      ? 'nothing listens there: start the broker, e.g. systemctl start mosquitto, or fix mqtt.url'
      : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
        ? 'the host name does not resolve: fix mqtt.url (or DNS, /etc/hosts)'
        : typeof err.code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ALTNAME/.test(err.code)
          ? "the broker's certificate did not verify: mqtt.url must name a host in it, and mqtt.caFile the CA it chains to"
          : 'fix mqtt.url or start the broker';
  return `mqtt.url: cannot reach the broker at ${url}: ${err.message} (${hint})`;
}

/** The operator CLI's default data folder, run from the install folder (where `npx tapsettle` works). */
const CLI_DEFAULT_DATA_DIR = resolve(fileURLToPath(new URL('..', import.meta.url)), 'data/hub');
const shellWord = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

/** `npx tapsettle <command>` acting on this hub's folder (the flag after the command, or npm takes it). */
function cliCommand(command: string, dataDir: string): string {
  return `npx tapsettle ${command}${resolve(dataDir) === CLI_DEFAULT_DATA_DIR ? '' : ` --data-dir ${shellWord(dataDir)}`}`;
}

async function main(): Promise<void> {
  const args = parse();
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const config = resolveConfig(args);
  const dataDirField = args['data-dir'] !== undefined || args.config === undefined ? '--data-dir' : 'dataDir';
  checkDataDir(dataDirField, config.dataDir);
  const files = readConfigFiles(config);

  // The network before the data folder: a port another program holds, or an external broker that
  // is down, is refused (exit 2) before a new hub's keys and ledger are made.
  const mqttPort: PortSetting | undefined =
    config.mqtt.kind === 'embedded'
      ? {
          field: args['mqtt-port'] !== undefined ? '--mqtt-port' : 'mqtt.port',
          flag: '--mqtt-port',
          hostField: args.host !== undefined ? '--host' : 'mqtt.host',
          host: config.mqtt.host,
          port: config.mqtt.port,
        }
      : undefined;
  const dashboardPort: PortSetting = {
    field: args.port !== undefined || args.config === undefined ? '--port' : 'dashboard.port',
    flag: '--port',
    hostField: 'dashboard.host',
    host: config.dashboard.host,
    port: config.dashboard.port,
  };
  // Without a config the default dashboard port is a convenience: taken, the dashboard takes any
  // free port — known before the demo is built, so it is built once.
  const defaultDashboardPort = args.port === undefined && args.config === undefined;
  const taken = await checkPorts([...(mqttPort ? [mqttPort] : []), dashboardPort], args.config, (s) => s === dashboardPort && defaultDashboardPort);
  if (taken.includes(dashboardPort)) console.error(`tapsettle: port ${dashboardPort.port} is taken; the dashboard uses a free port instead`);
  if (config.mqtt.kind === 'external') {
    const unreachable = await reachBroker(config.mqtt.url, files.externalMqtt?.tls?.ca);
    if (unreachable) fail(`${brokerRefusal(config.mqtt.url, unreachable)}; nothing was started or created`);
  }
  const options: DemoOptions = {
    dataDir: config.dataDir,
    currency: config.currency,
    verifierThreads: config.verifierThreads,
    payoutRetry: config.payoutRetry,
    host: config.mqtt.kind === 'embedded' ? config.mqtt.host : '127.0.0.1',
    mqttPort: config.mqtt.kind === 'embedded' ? config.mqtt.port : 0,
    ...files,
    dashboardHost: config.dashboard.host,
    dashboardPort: taken.includes(dashboardPort) ? 0 : config.dashboard.port,
    site: config.site.enabled,
    actionsPerS: config.site.customersPerS,
    terminalMode: config.site.terminalMode,
    logger: pino({ level: config.log.level }, pino.destination(2)),
    onNotice: (message) => console.error(`tapsettle: ${message}`),
  };

  // Loaded only once the config and the files it names are good: a config error exits at once.
  const { startDemo, DemoDataDirError } = await import('../simulators/fleet/demo.ts');
  let demo: Demo;
  try {
    demo = await startDemo(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number };
    // A port taken between the check above and the real bind.
    const unbound = e.syscall !== 'listen' ? undefined : mqttPort !== undefined && e.port === mqttPort.port ? mqttPort : e.port === dashboardPort.port ? dashboardPort : undefined;
    if (unbound) {
      fail(bindRefusal(unbound, e, args.config));
    } else if (config.mqtt.kind === 'external' && e.syscall !== undefined && ['connect', 'getaddrinfo'].includes(e.syscall)) {
      fail(brokerRefusal(config.mqtt.url, e));
    } else if (err instanceof DemoDataDirError) {
      fail(`${dataDirField}: ${err.message}`);
    } else if (err instanceof InputError) {
      // The data folder disagrees with the config (e.g. its currency): the operator's to fix.
      fail(err.message);
    } else throw err;
  }

  // The handlers before the banner: a Ctrl-C as soon as it is printed stops the hub cleanly (until
  // process.on is called, SIGINT's default action kills the process at once).
  const status = setInterval(() => {
    void demo.source.snapshot().then((s) => {
      const t = s.throughput;
      console.log(
        `[${new Date(s.hub.nowMs).toISOString().slice(11, 19)}] settled ${t.totalSettled}, declined ${t.totalDeclined}, ` +
          `${t.settledPerS}/s, p50 ${t.latencyMsP50 ?? '–'} ms, p99 ${t.latencyMsP99 ?? '–'} ms, ledger ${s.verify ? (s.verify.ok ? 'verified' : 'DISCREPANCY') : 'not checked yet'}`,
      );
    });
  }, 10_000);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      console.error('tapsettle: forced exit');
      process.exit(1);
    }
    stopping = true;
    clearInterval(status);
    console.log(`\n${signal}: stopping…`);
    demo
      .close()
      .then(() => {
        console.log('tapsettle stopped cleanly.');
        process.exit(0);
      })
      .catch((err: unknown) => {
        console.error('tapsettle: error while stopping:', err);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const what = config.site.enabled ? (demo.created ? 'new site created in' : 'reusing') : 'hub only, data in';
  console.log(`tapsettle is running (${what} ${demo.dataDir})`);
  const everyInterface = demo.dashboardHost === '0.0.0.0' || demo.dashboardHost === '::';
  console.log(`  dashboard  ${demo.dashboardUrl}${everyInterface ? ' (every interface of this machine, no authentication)' : ''}`);
  const brokerEverywhere = config.mqtt.kind === 'embedded' && (config.mqtt.host === '0.0.0.0' || config.mqtt.host === '::');
  console.log(`  mqtt       ${demo.mqttUrl}${brokerEverywhere ? ` (listening on every interface, ${config.mqtt.host}: kiosks use this machine's address)` : ''}`);
  if (demo.adminSocket) console.log(`  admin      ${demo.adminSocket} (operator commands such as \`${cliCommand('blocklist add WALLET', demo.dataDir)}\` act on this hub)`);
  if (demo.terminals.length > 0) console.log(`  terminals  ${demo.terminals.map((t) => `${t.terminalId} (${t.kind})`).join(', ')}`);
  console.log('Press Ctrl-C to stop.');
}

main().catch((err: unknown) => {
  console.error('tapsettle start failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
