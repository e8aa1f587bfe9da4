/**
 * The hub's config file (`npm start -- --config hub.json`), validated at start-up with clear
 * errors, frozen, then overridden by command-line flags. Relative paths resolve against the
 * config file. The files it names (TLS key and certificate, broker password, CA) are read and
 * checked by bin/start.ts before anything starts, each error naming its field.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseStrictJson } from '../protocol/index.ts';
import { payoutRetryOptions } from '../hub/clearing/payouts.ts';
import { InputError } from '../hub/service/input-error.ts';

const Port = z.int().min(0).max(65535);
const Host = z.string().min(1).max(255);

const EmbeddedMqtt = z.strictObject({
  kind: z.literal('embedded'),
  /** Address the embedded aedes broker binds; 0.0.0.0 to let kiosks on the LAN connect. */
  host: Host.default('127.0.0.1'),
  /** 0 = any free port (never fails because another broker holds 1883). */
  port: Port.default(0),
  /** MQTT over TLS: PEM files. */
  tls: z.strictObject({ keyFile: z.string().min(1), certFile: z.string().min(1) }).optional(),
});
const ExternalMqtt = z.strictObject({
  kind: z.literal('external'),
  /** e.g. mqtt://broker.lan:1883 or mqtts://broker.lan:8883 (Mosquitto). */
  url: z.string().regex(/^(mqtts?|tcp|tls):\/\/[^/]+$/, 'expected mqtt://host:port or mqtts://host:port'),
  username: z.string().min(1),
  /** File holding the hub's broker password (mode 0600). */
  passwordFile: z.string().min(1),
  caFile: z.string().min(1).optional(),
});

export const HubConfigSchema = z.strictObject({
  /** Keys (0600), registry.sqlite, ledger.sqlite. */
  dataDir: z.string().min(1).default('data/hub'),
  /** The hub's one settlement currency (ISO 4217). */
  currency: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code').default('EUR'),
  mqtt: z.discriminatedUnion('kind', [EmbeddedMqtt, ExternalMqtt]).default({ kind: 'embedded', host: '127.0.0.1', port: 0 }),
  dashboard: z.strictObject({ host: Host.default('127.0.0.1'), port: Port.default(4600) }).default({ host: '127.0.0.1', port: 4600 }),
  /** Worker threads for signature checks (0 = on the main thread). */
  verifierThreads: z.int().min(0).max(16).default(1),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn') }).default({ level: 'warn' }),
  /**
   * Payouts the clearing did not take are sent again at start and every `intervalMs`, the delay
   * doubling per failing round up to `maxIntervalMs` (hub/clearing/payouts.ts checks the values).
   */
  payoutRetry: z.strictObject({ intervalMs: z.int().optional(), maxIntervalMs: z.int().optional() }).default({}),
  /**
   * The simulated demo site (two gates, a vending machine, a POS, customers). Off unless a config
   * says `"enabled": true`: it enrolls terminals and mints money, so a production config that
   * leaves `site` out must not run it. Only the zero-config `npm start` turns it on (bin/start.ts).
   */
  site: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Simulated customer actions per second; 0 = terminals only. */
      customersPerS: z.number().min(0).max(1000).default(5),
      terminalMode: z.enum(['runtime', 'direct']).default('runtime'),
    })
    .default({ enabled: false, customersPerS: 5, terminalMode: 'runtime' }),
});

export type HubConfig = Readonly<z.infer<typeof HubConfigSchema>>;

/** What `npm start` runs without `--config`: the documented quick start, demo site included. */
export const ZERO_CONFIG = { site: { enabled: true } } as const;

/** Operational error: the config file is missing, not JSON, or invalid; `issues` name the fields. */
export class HubConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(
    message: string,
    readonly issues: string[] = [],
  ) {
    super(issues.length > 0 ? `${message}:\n  ${issues.join('\n  ')}` : message);
    this.name = 'HubConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a parsed config; relative paths resolve against `baseDir`. */
export function parseHubConfig(raw: unknown, baseDir = process.cwd()): HubConfig {
  const r = HubConfigSchema.safeParse(raw);
  if (!r.success) throw new HubConfigError('invalid hub config', r.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`));
  const c = r.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const mqtt =
    c.mqtt.kind === 'embedded'
      ? { ...c.mqtt, ...(c.mqtt.tls ? { tls: { keyFile: abs(c.mqtt.tls.keyFile), certFile: abs(c.mqtt.tls.certFile) } } : {}) }
      : { ...c.mqtt, passwordFile: abs(c.mqtt.passwordFile), ...(c.mqtt.caFile ? { caFile: abs(c.mqtt.caFile) } : {}) };
  if (c.site.enabled && c.currency !== 'EUR') throw new HubConfigError('invalid hub config', ['site.enabled: the demo site prices are in EUR; set currency to EUR or disable the site']);
  let payoutRetry;
  try {
    payoutRetry = payoutRetryOptions(c.payoutRetry);
  } catch (err) {
    if (err instanceof InputError) throw new HubConfigError('invalid hub config', [err.message]);
    throw err;
  }
  return deepFreeze({ ...c, dataDir: abs(c.dataDir), mqtt, payoutRetry });
}

export function loadHubConfigFile(file: string): HubConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HubConfigError(`cannot read hub config ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let raw: unknown;
  try {
    raw = parseStrictJson(text);
  } catch (err) {
    throw new HubConfigError(`hub config ${file} is not JSON: ${(err as Error).message}`);
  }
  return parseHubConfig(raw, dirname(resolve(file)));
}
