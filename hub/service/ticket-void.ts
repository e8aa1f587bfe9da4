/**
 * A refunded ticket sale takes its ticket with it: the refund claims the ticket's single use
 * (durably, before the money moves back), so the hub refuses it from then on (TICKET_USED), and a
 * ticket already used is not refunded. The voided ticket is on the announced deny list
 * (announce.blocklist `tickets`), which gates check offline too. Used by the operator's refund
 * and by a POS's failure receipt for a ticket never collected.
 */
import type { Registry } from '../registry/registry.ts';
import { derivedId } from './engine-ids.ts';

/**
 * `knownTicketSale`: the stored result says so; without it (pruned, or lost) the registry's ticket
 * record decides. Returns the voided ticket's id (give it back with `registry.unvoidTicket` if the
 * refund is then declined), 'used', or undefined when the sale sold no ticket. The caller
 * re-announces the deny list.
 */
export async function voidTicketOf(registry: Registry, requestId: string, knownTicketSale: boolean, refundId: string, nowMs: number): Promise<string | 'used' | undefined> {
  const ticketId = derivedId('ticket', requestId);
  if (!knownTicketSale && !registry.hasTicket(ticketId)) return undefined;
  return registry.voidTicket(ticketId, refundId, nowMs) === 'replay' ? 'used' : ticketId;
}
