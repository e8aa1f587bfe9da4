/**
 * `npm start`: the whole system on one machine — hub (SQLite ledger in ./data/hub, embedded MQTT
 * broker on a free port), operator dashboard, a simulated site (two gates, a vending machine, a
 * POS) and simulated customers. Prints the dashboard URL; Ctrl-C stops everything cleanly.
 * Re-running reuses the data folder (same ledger, terminals and wallets).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startDemo, type Demo } from '../simulators/fleet/demo.ts';

const USAGE = `usage: npm start -- [options]     (or: npx tsx bin/start.ts [options])

  --data-dir DIR     hub data folder (ledger, registry, keys)      default ./data/hub
  --port N           dashboard port; 0 = any free port             default 4600 (falls back to a free port if taken)
  --mqtt-port N      embedded MQTT broker port; 0 = any free port  default 0
  --host ADDR        address to bind the dashboard and broker      default 127.0.0.1
  --rate N           simulated customer actions per second         default 5
  --no-customers     start the site without simulated customers
  --terminal-mode M  runtime: real terminal runtimes with the PN532 emulator and the
                     virtual IO board; direct: protocol-only terminals   default runtime
  --log-level LEVEL  pino level for the hub's log on stderr        default warn
  -h, --help         this text`;

const DEFAULT_DASHBOARD_PORT = 4600;

function fail(message: string): never {
  console.error(`tapsettle start: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function intOption(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw)) fail(`--${name} must be a number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) fail(`--${name} must be between ${min} and ${max}, got ${raw}`);
  return value;
}

function parse() {
  try {
    return parseArgs({
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        'mqtt-port': { type: 'string' },
        host: { type: 'string' },
        rate: { type: 'string' },
        'no-customers': { type: 'boolean' },
        'terminal-mode': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
}

async function main(): Promise<void> {
  const args = parse();
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  const logLevel = args['log-level'] ?? 'warn';
  if (!levels.includes(logLevel)) fail(`--log-level must be one of ${levels.join(', ')}`);
  const port = intOption('port', args.port, DEFAULT_DASHBOARD_PORT, 0, 65535);
  const terminalMode = args['terminal-mode'] ?? 'runtime';
  if (terminalMode !== 'runtime' && terminalMode !== 'direct') fail(`--terminal-mode must be runtime or direct, got "${terminalMode}"`);
  const options = {
    dataDir: args['data-dir'] ?? 'data/hub',
    mqttPort: intOption('mqtt-port', args['mqtt-port'], 0, 0, 65535),
    host: args.host ?? '127.0.0.1',
    actionsPerS: args['no-customers'] ? 0 : intOption('rate', args.rate, 5, 0.1, 1000),
    logger: pino({ level: logLevel }, pino.destination(2)),
    terminalMode: terminalMode as 'runtime' | 'direct',
  };

  let demo: Demo;
  try {
    demo = await startDemo({ ...options, dashboardPort: port });
  } catch (err) {
    // The default port is a convenience: if something else holds it, take any free port.
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && args.port === undefined) {
      console.error(`tapsettle: port ${port} is taken; the dashboard uses a free port instead`);
      demo = await startDemo({ ...options, dashboardPort: 0 });
    } else throw err;
  }

  console.log(`tapsettle is running (${demo.created ? 'new site created' : 'reusing'} ${demo.dataDir})`);
  console.log(`  dashboard  ${demo.dashboardUrl}`);
  console.log(`  mqtt       ${demo.mqttUrl}`);
  console.log(`  terminals  ${demo.terminals.map((t) => `${t.terminalId} (${t.kind})`).join(', ')}`);
  console.log('Press Ctrl-C to stop.');

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
}

main().catch((err: unknown) => {
  console.error('tapsettle start failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
