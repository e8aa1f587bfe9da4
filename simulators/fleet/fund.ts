import { newRequestId } from '../../protocol/index.ts';
import type { Hub } from '../../hub/service/hub.ts';
import type { Outcome } from '../../hub/ledger/types.ts';

/**
 * Funds a simulated wallet straight in the ledger (a cash top-up): load runs give thousands of
 * wallets more than an operator may top up in one command (MAX_OPERATOR_TOPUP_MINOR).
 */
export function fundSimulatedWallet(hub: Hub, wallet: string, amountMinor: number, by: string): Promise<Outcome> {
  return hub.engine.submit({ kind: 'topup', requestId: newRequestId(), walletId: wallet, amountMinor, currency: hub.currency, source: 'cash', memo: `simulated:${by}` });
}
