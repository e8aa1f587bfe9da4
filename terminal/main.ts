// CLI entry: `tsx terminal/main.ts --config /etc/tapsettle/terminal.json`. systemd restarts it
// on a crash (terminal/deploy/tapsettle-terminal.service).
//   --check           validate the config file and exit (78 = EX_CONFIG on errors)
//   --keypad          cashier/customer commands on stdin (terminal/keypad.ts)
//   --keygen FILE     create the terminal's Ed25519 secret key (mode 0600) and print its public key
import { existsSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { generateKeyPair, toHex } from '../protocol/index.ts';
import { ConfigError, loadConfigFile } from './config.ts';
import { attachKeypad } from './keypad.ts';
import { startTerminal } from './start-terminal.ts';

const EX_CONFIG = 78;

const program = new Command()
  .name('tapsettle-terminal')
  .description('tapsettle terminal runtime (vending, gate or POS, chosen by the config file)')
  .option('-c, --config <file>', 'terminal config file (JSON)')
  .option('--check', 'validate the config file and exit')
  .option('--keypad', 'read keypad commands (select, add, checkout, topup, …) from stdin')
  .option('--keygen <file>', "write a new terminal secret key to <file> and print the public key to enroll");
program.parse();
const opts = program.opts<{ config?: string; check?: boolean; keygen?: string; keypad?: boolean }>();

if (opts.keygen) {
  if (existsSync(opts.keygen)) {
    console.error(`refusing to overwrite ${opts.keygen}`);
    process.exit(1);
  }
  const keys = generateKeyPair();
  writeFileSync(opts.keygen, `${toHex(keys.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
  console.log(toHex(keys.publicKey));
  process.exit(0);
}
if (!opts.config) {
  console.error('missing --config <file>');
  process.exit(EX_CONFIG);
}

try {
  const config = loadConfigFile(opts.config);
  if (opts.check) {
    console.log(`config OK: ${config.terminalId} (${config.kind}) → ${config.hub.url}`);
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
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(EX_CONFIG); // RestartPreventExitStatus=78 in the unit: a bad config does not loop
  }
  throw err;
}
