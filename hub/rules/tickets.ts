/**
 * Tickets (seed 004 claims 15–18): the hub signs ticket data for a sold product; the wallet keeps
 * it; an entrance checks it (also offline) and the hub enforces single use when uses are reported.
 * Pure: signing takes the key and `now`; use-tracking lives in the registry.
 */
import { z } from 'zod';
import {
  MAX_TICKET_PRODUCTS,
  TICKET_HORIZON_MS,
  signMessage,
  TicketProduct,
  toHex,
  verifyMessage,
  type Envelope,
  type KeyPair,
  type TicketProductT,
} from '../../protocol/index.ts';
import { parseWith, type ParseResult } from './catalog.ts';

export type { TicketProductT };

export const TicketProductsFile = z.strictObject({ products: z.array(TicketProduct).max(MAX_TICKET_PRODUCTS) });

export function parseTicketProductsFile(raw: unknown): ParseResult<TicketProductT[]> {
  const r = parseWith(TicketProductsFile, raw);
  if (!r.ok) return r;
  const seen = new Set<string>();
  for (const [i, p] of r.value.products.entries()) {
    if (seen.has(p.name)) return { ok: false, field: `products.${i}.name`, message: `duplicate product ${p.name}` };
    seen.add(p.name);
  }
  return { ok: true, value: r.value.products };
}

/** Deterministic in its inputs: the same sale (same ticketId, same time) signs to the same bytes. */
export function signTicket(hub: KeyPair, product: TicketProductT, wallet: string, ticketId: string, nowMs: number): Envelope<'ticket'> {
  return signMessage(
    'ticket',
    {
      ticketId,
      wallet,
      product: product.name,
      stations: [...product.stations],
      validFrom: nowMs,
      validUntil: nowMs + product.validityMs,
      issuedAt: nowMs,
      hubKey: toHex(hub.publicKey),
    },
    hub.secretKey,
  );
}

export type TicketCheck = { ok: true } | { ok: false; code: 'BAD_SIGNATURE' | 'TICKET_INVALID' | 'UNKNOWN_ISSUER' };

/** What an entrance (and the hub) checks before admitting with a ticket. */
export function checkTicket(ticket: Envelope<'ticket'>, trustedHubKeys: readonly string[], station: string, atMs: number): TicketCheck {
  const b = ticket.body;
  if (!trustedHubKeys.includes(b.hubKey)) return { ok: false, code: 'UNKNOWN_ISSUER' };
  if (!verifyMessage(ticket, b.hubKey)) return { ok: false, code: 'BAD_SIGNATURE' };
  if (atMs < b.validFrom || atMs > b.validUntil || b.validUntil - b.validFrom > TICKET_HORIZON_MS) return { ok: false, code: 'TICKET_INVALID' };
  if (b.stations.length > 0 && !b.stations.includes(station)) return { ok: false, code: 'TICKET_INVALID' };
  return { ok: true };
}
