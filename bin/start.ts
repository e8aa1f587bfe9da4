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
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Demo, DemoOptions } from '../simulators/fleet/demo.ts';
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
  const options: DemoOptions = {
    dataDir: config.dataDir,
    currency: config.currency,
    verifierThreads: config.verifierThreads,
    payoutRetry: config.payoutRetry,
    host: config.mqtt.kind === 'embedded' ? config.mqtt.host : '127.0.0.1',
    mqttPort: config.mqtt.kind === 'embedded' ? config.mqtt.port : 0,
    ...files,
    dashboardHost: config.dashboard.host,
    dashboardPort: config.dashboard.port,
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
    // The default dashboard port is a convenience: if something else holds it, take any free port.
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && args.port === undefined && args.config === undefined) {
      console.error(`tapsettle: port ${options.dashboardPort} is taken; the dashboard uses a free port instead`);
      demo = await startDemo({ ...options, dashboardPort: 0 });
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
