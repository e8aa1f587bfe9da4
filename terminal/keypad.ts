// The cashier's / customer's keypad as a text console (stdin lines), for a POS or vending unit
// without a dedicated keypad, and for trying a terminal by hand:
//   vending:  select <sku> | cancel | slot-reset <slot> (operator: a slot out of order back in service)
//   pos:      add <sku> [qty] | checkout | clear | topup <amountMinor> <operatorId> <pin> | ticket <product>
//   any:      status | help
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { TerminalRuntime } from './runtime.ts';

const HELP = {
  vending: 'select <sku> | cancel | slot-reset <slot> | status',
  pos: 'add <sku> [qty] | checkout | clear | topup <amountMinor> <operatorId> <pin> | ticket <product> | status',
  gate: 'status (a gate has no keypad: tap a wallet)',
} as const;

/** Parses one console line into a runtime call; returns the text to show (never throws on input). */
export async function runKeypadLine(runtime: TerminalRuntime, line: string): Promise<string> {
  const [cmd, ...args] = line.trim().split(/\s+/);
  const kind = runtime.config.kind;
  const int = (s: string | undefined): number | undefined => (s !== undefined && /^\d{1,12}$/.test(s) ? Number(s) : undefined);
  switch (`${kind}:${cmd ?? ''}`) {
    case 'vending:select':
      if (!args[0]) return 'usage: select <sku>';
      await runtime.select(args[0]);
      return runtime.lastDisplay;
    case 'vending:cancel':
      await runtime.cancelSelection();
      return runtime.lastDisplay;
    case 'vending:slot-reset': {
      const slot = int(args[0]);
      if (slot === undefined || args.length > 1) return 'usage: slot-reset <slot>';
      const failures = runtime.resetSlot(slot);
      return failures > 0 ? `slot ${slot} back in service (${failures} failed vend${failures === 1 ? '' : 's'} cleared)` : `slot ${slot} was in service`;
    }
    case 'pos:add': {
      const qty = args[1] === undefined ? 1 : int(args[1]);
      if (!args[0] || qty === undefined) return 'usage: add <sku> [qty]';
      await runtime.addItem(args[0], qty);
      return runtime.lastDisplay;
    }
    case 'pos:checkout':
      await runtime.checkout();
      return runtime.lastDisplay;
    case 'pos:clear':
      await runtime.clear();
      return runtime.lastDisplay;
    case 'pos:topup': {
      const amount = int(args[0]);
      if (amount === undefined || !args[1] || !args[2]) return 'usage: topup <amountMinor> <operatorId> <pin>';
      await runtime.topUp(amount, args[1], args[2]);
      return runtime.lastDisplay;
    }
    case 'pos:ticket': {
      if (!args[0] || args.length > 1) return `usage: ticket <product> (products: ${runtime.products.map((p) => p.name).join(', ') || 'none announced yet'})`;
      await runtime.sellTicket(args[0]);
      return runtime.lastDisplay;
    }
    default:
      if (cmd === 'status') {
        const line = `${runtime.config.terminalId} ${kind} state=${runtime.machineState.s} hub=${runtime.isOnline ? 'online' : 'OFFLINE'} articles=${runtime.articles.length}`;
        const out = runtime.slotsOutOfOrder;
        return out.length > 0 ? `${line} out-of-order=${out.map((f) => f.slot).join(',')}` : line;
      }
      return `commands: ${HELP[kind]}`;
  }
}

export function attachKeypad(runtime: TerminalRuntime, input: Readable = process.stdin, output: Writable = process.stdout): () => void {
  const rl = createInterface({ input, terminal: false });
  runtime.on('display', (text) => output.write(`> ${text}\n`));
  runtime.on('print', (lines) => output.write(`${lines.map((l) => `| ${l}`).join('\n')}\n`));
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    void runKeypadLine(runtime, line).then((text) => output.write(`${text}\n`));
  });
  return () => rl.close();
}
