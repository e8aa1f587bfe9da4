// CLI entry: `tsx terminal/main.ts --config /etc/tapsettle/terminal.json`. systemd restarts it
// on a failure except exit 78 (terminal/deploy/tapsettle-terminal.service).
//   --check           validate the config file, the key and the certificate, and exit
//   --keypad          cashier/customer commands on stdin (terminal/keypad.ts)
//   --keygen FILE     create the terminal's Ed25519 secret key (mode 0600) and print its public key
// Exit codes (terminal/README.md, "Starting, --check and exit codes"): 0 ok; 1 crash (a bug: stack trace, restarted);
// 69 EX_UNAVAILABLE a device the config names is missing or does not answer, or the actuator
// board's link is lost while running (restarted: a USB adapter may appear later); 73 EX_CANTCREAT dataDir cannot be created or opened (restarted);
// 78 EX_CONFIG the config, its key/certificate or the command line is wrong (not restarted).
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, type CommanderError } from 'commander';
import { pino } from 'pino';
import { generateKeyPair, toHex } from '../protocol/index.ts';
import { certificateWarning } from './certificate-validity.ts';
import { ConfigError, loadConfigFile, type TerminalConfig } from './config.ts';
import { attachKeypad } from './keypad.ts';
import { checkTerminalConfig, startTerminal, StartError } from './start-terminal.ts';

const EX_UNAVAILABLE = 69;
const EX_CANTCREAT = 73;
const EX_CONFIG = 78;

/** The exit code of an operational start-up error; undefined for anything else (a bug: crash). */
function exitCodeOf(err: unknown): number | undefined {
  if (err instanceof ConfigError) return EX_CONFIG;
  if (err instanceof StartError) return err.code === 'DEVICE_UNAVAILABLE' ? EX_UNAVAILABLE : EX_CANTCREAT;
  return undefined;
}

const program = new Command()
  .name('tapsettle-terminal')
  .description('tapsettle terminal runtime (vending, gate or POS, chosen by the config file)')
  .option('-c, --config <file>', 'terminal config file (JSON)')
  .option('--check', 'validate the config file, key and certificate, and exit')
  .option('--keypad', 'read keypad commands (select, add, checkout, topup, …) from stdin')
  .option('--keygen <file>', "write a new terminal secret key to <file> and print the public key to enroll")
  // A usage error (unknown option, missing argument) is the unit's command line: no restart loop.
  .exitOverride((err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : EX_CONFIG));
program.parse();
const opts = program.opts<{ config?: string; check?: boolean; keygen?: string; keypad?: boolean }>();

if (opts.keygen) {
  const keys = generateKeyPair();
  try {
    writeFileSync(opts.keygen, `${toHex(keys.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const folder = dirname(resolve(opts.keygen));
    const why =
      e.code === 'EEXIST'
        ? 'refusing to overwrite an existing key'
        : e.code === 'ENOENT'
          ? `the folder ${folder} does not exist (create it first: sudo install -d -o tapsettle -m 0700 ${folder})`
          : e.message;
    console.error(`--keygen: cannot write ${opts.keygen}: ${why}`);
    process.exit(EX_CONFIG);
  }
  console.log(toHex(keys.publicKey));
  process.exit(0);
}
if (!opts.config) {
  console.error('missing --config <file>');
  process.exit(EX_CONFIG);
}

let config: TerminalConfig | undefined;
try {
  config = loadConfigFile(opts.config);
  if (opts.check) {
    const { certificate } = await checkTerminalConfig(config); // the same checks startTerminal runs before it touches anything
    console.log(`config OK: ${config.terminalId} (${config.kind}) → ${config.hub.url}`);
    const warning = certificateWarning(certificate.body, Date.now());
    if (warning) console.error(`warning: ${warning.code}: ${warning.message}`);
    process.exit(0);
  }
  const terminal = await startTerminal(config);
  if (opts.keypad) attachKeypad(terminal.runtime);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    terminal.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (err) {
  const exitCode = exitCodeOf(err);
  if (exitCode === undefined) throw err; // a bug: crash with the stack trace
  const e = err as ConfigError | StartError;
  if (opts.check) {
    console.error(e.message);
  } else {
    // One JSON line on stderr (the journal), written synchronously before the exit.
    const log = pino({ base: config ? { terminalId: config.terminalId } : {} }, pino.destination({ fd: 2, sync: true }));
    const where = e instanceof StartError ? { field: e.field, path: e.path, ...(e.cause && typeof e.cause === 'object' && 'code' in e.cause ? { cause: e.cause.code } : {}) } : { issues: e.issues };
    log.fatal({ code: e.code, ...where, exitCode }, e.message.replace(/\n\s*/g, ' '));
  }
  process.exit(exitCode); // the unit restarts on 69 and 73, not on 78 (RestartPreventExitStatus=78)
}
