// The terminal's configuration: one JSON file, validated at start-up (zod), frozen, injected.
// This is the ONLY module of terminal/ that reads process.env (TAPSETTLE_TERMINAL_LOG_LEVEL).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseStrictJson } from '../protocol/index.ts';
import { DEFAULT_RISK_LIMITS } from './policy/risk.ts';

const Hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex chars (an Ed25519 public key)');
const Id = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1..64 chars of [A-Za-z0-9._-]');
const Ms = (min: number, max: number) => z.int().min(min).max(max);

const Pn532 = z.strictObject({
  kind: z.literal('pn532'),
  /** Serial path: /dev/serial0 (Pi UART, HSU mode) or /dev/ttyUSB0 (USB-serial). */
  path: z.string().min(1),
  baudRate: z.literal(115_200).default(115_200),
  pollIntervalMs: Ms(5, 1000).default(30),
  exchangeTimeoutMs: Ms(50, 10_000).default(1500),
  /** Air bit rate after activation (InPSL, UM0701-02 §7.3.10); a card that cannot stays at 106. */
  bitRateKbps: z.union([z.literal(106), z.literal(212), z.literal(424)]).default(424),
});
/** An in-process PN532 emulator on a pty (demo and tests; wallets are tapped programmatically). */
const EmulatedNfc = z.strictObject({
  kind: z.literal('emulated'),
  pollIntervalMs: Ms(5, 1000).default(20),
  bitRateKbps: z.union([z.literal(106), z.literal(212), z.literal(424)]).default(424),
});

const GatePins = z.strictObject({
  barrier: z.union([
    z.strictObject({ kind: z.literal('servo'), pin: z.int().min(0), closedDeg: z.int().min(0).max(180), openDeg: z.int().min(0).max(180) }),
    z.strictObject({ kind: z.literal('relay'), pin: z.int().min(0) }),
  ]),
  beam: z.strictObject({ pin: z.int().min(0), blockedLevel: z.union([z.literal(0), z.literal(1)]) }),
  entryLed: z.int().min(0),
  exitLed: z.int().min(0),
  deniedLed: z.int().min(0),
  buzzer: z.int().min(0),
});
const VendingPins = z.strictObject({ motorPins: z.array(z.int().min(0)).min(1).max(64), drop: z.strictObject({ pin: z.int().min(0), activeLevel: z.union([z.literal(0), z.literal(1)]) }) });
const PosPins = z.strictObject({ greenLed: z.int().min(0), yellowLed: z.int().min(0), redLed: z.int().min(0), buzzer: z.int().min(0) });

const JohnnyFive = z.strictObject({
  kind: z.literal('johnny-five'),
  /** Firmata board on a serial port; omit to use the Raspberry Pi's own GPIO through `ioPlugin`. */
  port: z.string().min(1).optional(),
  /** Name of an installed johnny-five IO plugin package (e.g. "raspi-io"); instead of `port`. */
  ioPlugin: z.string().min(1).optional(),
  /**
   * The plugin's export to construct. Omitted: its default export if that is a function, else its
   * only exported function (raspi-io 11: `RaspiIO`). Only with `ioPlugin`.
   */
  ioPluginExport: z.string().regex(/^[A-Za-z_$][\w$]*$/, 'expected a JavaScript export name (e.g. "RaspiIO")').optional(),
  gate: GatePins.optional(),
  vending: VendingPins.optional(),
  pos: PosPins.optional(),
});
const VirtualIo = z.strictObject({ kind: z.literal('virtual') });

/** Serial line rates an ESC/POS printer's interface offers (its self-test page prints the one set). */
const PRINTER_BAUD_RATES = [2400, 4800, 9600, 19_200, 38_400, 57_600, 115_200] as const;
/**
 * The ESC/POS receipt printer (hardware/README.md, "Receipt printer"). Omitted: slips go to the
 * runtime's `print` listeners (keypad console) and the log only.
 */
const Printer = z.strictObject({
  /** /dev/usb/lp0 (USB printer class), /dev/ttyUSB1 or /dev/serial0 (serial), a udev symlink. */
  path: z.string().min(1),
  /** Omitted: 'device' for a path under /dev/usb/ or named lp<n>, else 'serial'. */
  kind: z.enum(['serial', 'device']).optional(),
  /** Serial only; omitted: 19200 (hardware/printer/serial-receipt-printer.ts). */
  baudRate: z
    .int()
    .refine((n) => (PRINTER_BAUD_RATES as readonly number[]).includes(n), `expected one of ${PRINTER_BAUD_RATES.join(', ')} (the rate on the printer's self-test page)`)
    .optional(),
});
export type PrinterConfig = z.infer<typeof Printer>;

/** The printer's link: `printer.kind`, or from the path (/dev/usb/lp0, /dev/lp0 → device). */
export function printerKind(printer: PrinterConfig): 'serial' | 'device' {
  return printer.kind ?? (/^\/dev\/usb\//.test(printer.path) || /(^|\/)lp\d+$/.test(printer.path) ? 'device' : 'serial');
}

export const TerminalConfigSchema = z
  .strictObject({
    terminalId: Id,
    kind: z.enum(['vending', 'gate', 'pos']),
    merchantId: Id,
    currency: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code').default('EUR'),
    /** Holds terminal.sqlite (outbox, offline authorizations, receipts). Relative to the config file. */
    dataDir: z.string().min(1),
    /** The terminal's Ed25519 secret key, 64 hex chars in a file (mode 0600). */
    keyFile: z.string().min(1),
    /** The hub-issued terminal certificate (JSON envelope) from enrollment. */
    certificateFile: z.string().min(1),
    hub: z.strictObject({
      url: z.string().regex(/^mqtts?:\/\/[^/]+$/, 'expected mqtt://host:port or mqtts://host:port'),
      /**
       * mqtts only: PEM file of the CA certificate(s) the hub's broker certificate must chain to
       * (for a self-signed hub certificate: that certificate). Replaces Node's default CAs;
       * omitted: Node's default CAs. Read and checked by loadConfigFile (--check).
       */
      caFile: z.string().min(1).optional(),
      /** The hub's signing key, pinned at enrollment; later keys come signed in announce.keys. */
      hubKey: Hex32,
      issuerKeys: z.array(Hex32).min(1).max(8),
      /** External Mosquitto: the per-terminal broker password. Omit for the embedded broker (token). */
      password: z.string().min(1).optional(),
      /** How long a customer waits for the hub before the attempt is abandoned. */
      timeoutMs: Ms(200, 60_000).default(5000),
      /** Re-send an unanswered request (same id, same bytes) after this long. */
      retryMs: Ms(50, 60_000).default(1000),
      reconnectPeriodMs: Ms(50, 60_000).default(1000),
    }),
    nfc: z.discriminatedUnion('kind', [Pn532, EmulatedNfc]),
    io: z.discriminatedUnion('kind', [JohnnyFive, VirtualIo]),
    gate: z
      .strictObject({
        station: Id,
        mode: z.enum(['entry', 'exit']),
        passageTimeoutMs: Ms(500, 60_000).default(8000),
        /** Keep the barrier open this long after the beam cleared. */
        closeDelayMs: Ms(0, 10_000).default(300),
        /** Someone in the beam this long is counted as through (the barrier still waits for them). */
        inPassageMaxMs: Ms(1000, 600_000).default(120_000),
      })
      .optional(),
    vending: z.strictObject({ dropTimeoutMs: Ms(100, 60_000).default(4000), slotCount: z.int().min(1).max(64).default(8) }).optional(),
    pos: z
      .strictObject({
        operators: z.array(z.strictObject({ id: Id, pinSha256: Hex32 })).max(100).default([]),
      })
      .optional(),
    limits: z
      .strictObject({
        terminalPeriodMinor: z.int().min(0).default(DEFAULT_RISK_LIMITS.terminalPeriodMinor),
        periodMs: Ms(60_000, 31 * 24 * 3600_000).default(DEFAULT_RISK_LIMITS.periodMs),
        maxStatementAgeMs: Ms(0, 365 * 24 * 3600_000).default(DEFAULT_RISK_LIMITS.maxStatementAgeMs),
        maxSingleMinor: z.int().min(0).default(DEFAULT_RISK_LIMITS.maxSingleMinor),
      })
      .default(DEFAULT_RISK_LIMITS),
    printer: Printer.optional(),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
  })
  .superRefine((c, ctx) => {
    if (c.kind === 'gate' && !c.gate) ctx.addIssue({ code: 'custom', path: ['gate'], message: 'required when kind is "gate"' });
    if (c.io.kind === 'johnny-five' && !c.io[c.kind]) ctx.addIssue({ code: 'custom', path: ['io', c.kind], message: `pin map required for a ${c.kind} on johnny-five` });
    if (c.io.kind === 'johnny-five' && (c.io.port === undefined) === (c.io.ioPlugin === undefined)) {
      const both = c.io.port !== undefined;
      ctx.addIssue({
        code: 'custom',
        path: ['io', both ? 'ioPlugin' : 'port'],
        message: both
          ? 'give io.port (a Firmata board) or io.ioPlugin (the Pi\'s own GPIO), not both: the plugin would be used and the board ignored'
          : 'johnny-five needs io.port (a Firmata board on a serial port, e.g. /dev/ttyACM0) or io.ioPlugin (an IO plugin package)',
      });
    }
    if (c.io.kind === 'johnny-five' && c.io.ioPluginExport !== undefined && c.io.ioPlugin === undefined) {
      ctx.addIssue({ code: 'custom', path: ['io', 'ioPluginExport'], message: 'only with io.ioPlugin' });
    }
    if (c.printer !== undefined && c.kind === 'gate') {
      ctx.addIssue({ code: 'custom', path: ['printer'], message: 'a gate prints no slips: only a pos or vending terminal has a printer' });
    }
    if (c.printer?.baudRate !== undefined && printerKind(c.printer) === 'device') {
      ctx.addIssue({
        code: 'custom',
        path: ['printer', 'baudRate'],
        message: `only for a serial printer: ${c.printer.path} is a printer device (USB printer class) with no baud rate; remove baudRate, or set printer.kind to "serial" if it is a serial port`,
      });
    }
    if (c.hub.caFile !== undefined && !c.hub.url.startsWith('mqtts://')) {
      ctx.addIssue({ code: 'custom', path: ['hub', 'caFile'], message: 'only for an mqtts:// hub.url: mqtt:// is plain TCP, no certificate is checked (use mqtts:// or remove caFile)' });
    }
  });

export type TerminalConfig = Readonly<z.infer<typeof TerminalConfigSchema>>;
export type TerminalConfigInput = z.input<typeof TerminalConfigSchema>;

/** Operational error: the config file is missing, not JSON, or invalid. `issues` name the fields. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(
    message: string,
    readonly issues: string[] = [],
  ) {
    super(issues.length > 0 ? `${message}:\n  ${issues.join('\n  ')}` : message);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validate a parsed config object; relative paths resolve against `baseDir`. */
export function parseConfig(raw: unknown, baseDir = process.cwd(), env: NodeJS.ProcessEnv = process.env): TerminalConfig {
  const r = TerminalConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError('invalid terminal config', r.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`));
  }
  const c = r.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const level = env['TAPSETTLE_TERMINAL_LOG_LEVEL'];
  const log = level ? TerminalConfigSchema.shape.log.unwrap().safeParse({ level }) : undefined;
  if (log && !log.success) throw new ConfigError('invalid environment', [`TAPSETTLE_TERMINAL_LOG_LEVEL: ${log.error.issues[0]?.message ?? 'invalid'}`]);
  return deepFreeze({
    ...c,
    dataDir: abs(c.dataDir),
    keyFile: abs(c.keyFile),
    certificateFile: abs(c.certificateFile),
    hub: { ...c.hub, ...(c.hub.caFile !== undefined ? { caFile: abs(c.hub.caFile) } : {}) },
    ...(c.printer !== undefined ? { printer: { ...c.printer, kind: printerKind(c.printer) } } : {}),
    ...(log?.success ? { log: log.data } : {}),
  });
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): TerminalConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseStrictJson(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not JSON: ${(err as Error).message}`);
  }
  const config = parseConfig(raw, dirname(resolve(path)), env);
  if (config.hub.caFile !== undefined) readCaFile(config.hub.caFile);
  return config;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * The CA certificates of `hub.caFile` (PEM, for tls.connect's `ca`): the file must be readable
 * and hold at least one certificate, each of which parses — a DER file, a key or a truncated
 * copy is refused here (--check, start-up) as a ConfigError, not at every TLS handshake.
 */
export function readCaFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('invalid terminal config', [`hub.caFile: cannot read ${path}: ${(err as Error).message}`]);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError('invalid terminal config', [`hub.caFile: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`]);
  for (const [i, pem] of blocks.entries()) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError('invalid terminal config', [`hub.caFile: certificate ${i + 1} in ${path} does not parse: ${(err as Error).message}`]);
    }
  }
  return `${blocks.join('\n')}\n`;
}
