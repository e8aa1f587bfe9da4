/**
 * `tapsettle sim --terminals 200 --rate 1000 --duration 60`: argument checking (exit 2 with a
 * clear message), a progress display (one updating line on a TTY, periodic lines otherwise) and
 * the summary. Exit 0 when money is conserved and every checked hub signature verified, else 1.
 */
import { parseArgs } from 'node:util';
import { runFleet, SimDataDirError, type FleetProgress, type FleetSummary } from './fleet-run.ts';

export const SIM_USAGE = `usage: tapsettle sim [options]

Drives a fleet of simulated POS terminals over MQTT against a real hub on this machine
(SQLite ledger, embedded broker on a free port) and prints what it measured.

  --terminals N             simulated terminals (1–5000)                    default 10
  --rate R                  signed purchase requests per second, open loop  default 100
  --duration S              seconds of load (up to 3600)                    default 10
  --wallets-per-terminal N  customers per terminal (1–100)                  default 5
  --data-dir DIR            keep its throw-away hub here: an empty folder or an earlier run's
                            (default: a temp folder, removed)
  --dashboard               serve the operator dashboard while it runs (URL on stderr)
  --json                    print the summary as JSON
  -h, --help                this text

Every 20th wallet is funded below the price of one article, so the summary shows
INSUFFICIENT_FUNDS declines next to the settled purchases.`;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

export interface SimArgs {
  readonly terminals: number;
  readonly ratePerS: number;
  readonly durationS: number;
  readonly walletsPerTerminal: number;
  readonly dataDir?: string;
  readonly json: boolean;
  readonly dashboard: boolean;
  readonly help: boolean;
}

function numberArg(name: string, raw: string | undefined, fallback: number, { min, max, integer }: { min: number; max: number; integer: boolean }): number {
  if (raw === undefined) return fallback;
  const pattern = integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (!pattern.test(raw.trim())) throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'}, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${raw}`);
  return value;
}

/** Pure: argv (after `sim`) → arguments, or a UsageError naming the bad one. */
export function parseSimArgs(argv: readonly string[]): SimArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        terminals: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        'wallets-per-terminal': { type: 'string' },
        'data-dir': { type: 'string' },
        json: { type: 'boolean' },
        dashboard: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const str = (k: string) => values[k] as string | undefined;
  const terminals = numberArg('terminals', str('terminals'), 10, { min: 1, max: 5000, integer: true });
  const ratePerS = numberArg('rate', str('rate'), 100, { min: 0.1, max: 100_000, integer: false });
  const durationS = numberArg('duration', str('duration'), 10, { min: 0.1, max: 3600, integer: false });
  const walletsPerTerminal = numberArg('wallets-per-terminal', str('wallets-per-terminal'), 5, { min: 1, max: 100, integer: true });
  const dataDir = str('data-dir');
  if (dataDir !== undefined && dataDir.trim() === '') throw new UsageError('--data-dir must not be empty');
  return { terminals, ratePerS, durationS, walletsPerTerminal, ...(dataDir !== undefined ? { dataDir } : {}), json: values['json'] === true, dashboard: values['dashboard'] === true, help: values['help'] === true };
}

export function formatSummary(s: FleetSummary): string {
  const declined = Object.entries(s.declinedByCode)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const lines = [
    `tapsettle sim: ${s.terminals} terminals, ${s.wallets} wallets, ${s.ratePerS} requests/s for ${s.durationS} s (open loop)`,
    `  sent          ${s.sent}`,
    `  settled       ${s.settled}  (${s.settledPerS}/s)`,
    `  declined      ${s.declined}${declined ? `  by reason: ${declined}` : ''}`,
    `  timeouts      ${s.timeouts}`,
    `  latency       p50 ${s.latencyMsP50} ms, p99 ${s.latencyMsP99} ms, max ${s.latencyMsMax} ms  (signed request → hub-signed result, at the terminal)`,
    `  hub latency   p50 ${s.hubLatencyMsP50 ?? '–'} ms, p99 ${s.hubLatencyMsP99 ?? '–'} ms  (request in → signed reply out, inside the hub)`,
    `  signatures    ${s.signaturesChecked} hub replies checked, ${s.signaturesBad} bad`,
    `  conservation  ${s.conservation.ok ? 'OK' : 'FAILED'} — ${s.conservation.detail}`,
  ];
  if (s.dataDir) lines.push(`  ledger        ${s.dataDir}`);
  return lines.join('\n');
}

function progressLine(p: FleetProgress): string {
  const pct = Math.round((p.elapsedS / p.durationS) * 100);
  return `[${p.elapsedS.toFixed(1)}/${p.durationS} s ${String(pct).padStart(3)}%] settled ${p.settled}, declined ${p.declined}, ${p.settledPerS}/s, hub p99 ${p.hubLatencyMsP99 ?? '–'} ms`;
}

/** Runs `tapsettle sim`; returns the process exit code. */
export async function runSimCli(argv: readonly string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let args: SimArgs;
  try {
    args = parseSimArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`tapsettle sim: ${e.message}\n\n${SIM_USAGE}\n`);
      return 2;
    }
    throw e;
  }
  if (args.help) {
    out.write(`${SIM_USAGE}\n`);
    return 0;
  }
  const tty = Boolean(err.isTTY) && !args.json;
  const everyMs = Math.max(1000, Math.min(10_000, Math.round((args.durationS * 1000) / 10)));
  let lastLineMs = 0;
  let lastWidth = 0;
  let lastLine = '';
  const onProgress = (p: FleetProgress) => {
    const line = progressLine(p);
    if (tty) {
      err.write(`\r${line.padEnd(lastWidth)}`);
      lastWidth = line.length;
    } else if (Date.now() - lastLineMs >= everyMs && p.elapsedS > 0 && line !== lastLine) {
      // Not a TTY (a log): a line per period, none while nothing changes (the drain after the run).
      lastLineMs = Date.now();
      lastLine = line;
      err.write(`${line}\n`);
    }
  };
  const onStage = (message: string) => {
    if (tty && lastWidth > 0) {
      err.write('\n');
      lastWidth = 0;
    }
    err.write(`tapsettle sim: ${message}\n`);
  };
  // Ctrl-C: stop the generator, let the run close the hub and remove its temp folder, exit 130.
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  let summary: FleetSummary;
  try {
    summary = await runFleet({
      terminals: args.terminals,
      ratePerS: args.ratePerS,
      durationS: args.durationS,
      walletsPerTerminal: args.walletsPerTerminal,
      ...(args.dataDir !== undefined ? { dataDir: args.dataDir } : {}),
      dashboard: args.dashboard,
      onProgress,
      onStage,
      signal: abort.signal,
    });
  } catch (e) {
    if (e instanceof SimDataDirError) {
      err.write(`tapsettle sim: ${e.message}\n`);
      return 2;
    }
    if (!abort.signal.aborted) throw e;
    if (tty && lastWidth > 0) err.write('\n');
    err.write('tapsettle sim: interrupted; hub closed and temporary files removed\n');
    return 130;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  if (tty && lastWidth > 0) err.write('\n');
  out.write(args.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary.conservation.ok && summary.signaturesBad === 0 ? 0 : 1;
}
