// Usage: tsx hub/ledger/verify-cli.ts <ledger.db>
// Prints the verify report as JSON; exit 0 = consistent, 1 = discrepancy, 2 = usage or open error.
import { existsSync } from 'node:fs';
import { SqliteLedgerStore } from './sqlite-store.ts';
import { verifyLedger } from './verify.ts';

async function main(argv: readonly string[]): Promise<number> {
  const file = argv[0];
  if (file === undefined || argv.length !== 1) {
    console.error('usage: verify-cli <ledger.db>');
    return 2;
  }
  if (!existsSync(file)) {
    console.error(`verify-cli: no such file: ${file}`);
    return 2;
  }
  const store = SqliteLedgerStore.open(file, { readonly: true });
  try {
    const report = await verifyLedger(store);
    console.log(JSON.stringify(report, null, 2));
    if (!report.ok) console.error(`verify-ledger: FIRST DISCREPANCY ${JSON.stringify(report.firstDiscrepancy)}`);
    return report.ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
