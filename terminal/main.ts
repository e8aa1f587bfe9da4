// CLI entry: `tsx terminal/main.ts --config /etc/tapsettle/terminal.json`. systemd restarts it
// on a crash (terminal/deploy/tapsettle-terminal.service).
import { Command } from 'commander';
import { ConfigError, loadConfigFile } from './config.ts';
import { startTerminal } from './start-terminal.ts';

const program = new Command()
  .name('tapsettle-terminal')
  .description('tapsettle terminal runtime (vending, gate or POS, chosen by the config file)')
  .requiredOption('-c, --config <file>', 'terminal config file (JSON)')
  .option('--check', 'validate the config file and exit');
program.parse();
const opts = program.opts<{ config: string; check?: boolean }>();

try {
  const config = loadConfigFile(opts.config);
  if (opts.check) {
    console.log(`config OK: ${config.terminalId} (${config.kind}) → ${config.hub.url}`);
    process.exit(0);
  }
  const terminal = await startTerminal(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    terminal.runtime.emit('display', `stopping (${signal})`, 'info');
    terminal.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(78); // EX_CONFIG: systemd's RestartPreventExitStatus keeps it from looping
  }
  throw err;
}
