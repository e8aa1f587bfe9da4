/**
 * The `tapsettle` command: `tapsettle sim …` runs the fleet/load simulator; every other
 * subcommand goes to the hub's operator CLI (hub/cli/main.ts: register-wallet, enroll-terminal,
 * top-up, import-catalog, verify-ledger, …).
 */
import { existsSync } from 'node:fs';

const USAGE = `usage: tapsettle <command> [options]

  sim                  fleet/load simulator against a hub on this machine (tapsettle sim --help)
  <operator command>   the hub's operator CLI (tapsettle --help lists them): register-wallet,
                       enroll-terminal, top-up, import-catalog, import-fares, refund, cancel,
                       payout, blocklist, show-account, verify-ledger, …

Start the whole demo system with: npm start`;

const HELP = new Set(['--help', '-h', 'help']);

/**
 * Exit codes as the operator CLI's: 0 done (and help asked for), 2 a usage error — no command, a
 * command group without its subcommand (`tapsettle blocklist`), an unknown command.
 */
async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'sim' || (command === 'help' && rest[0] === 'sim')) {
    const { runSimCli } = await import('../simulators/fleet/sim-cli.ts');
    return runSimCli(command === 'sim' ? rest : ['--help']);
  }
  const cliUrl = new URL('../hub/cli/main.ts', import.meta.url);
  if (!existsSync(cliUrl)) {
    if (command !== undefined && HELP.has(command)) {
      console.log(USAGE);
      return 0;
    }
    console.error(command === undefined ? USAGE : `tapsettle: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  // The operator CLI lists every command, sim included; with none given it says so on stderr (exit 2).
  const cli = (await import(cliUrl.href)) as { main: (argv: readonly string[]) => Promise<number> };
  return cli.main([process.argv[0] ?? 'node', 'tapsettle', ...argv]);
}

process.exitCode = await main(process.argv.slice(2));
