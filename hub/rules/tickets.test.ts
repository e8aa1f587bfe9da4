import { describe, expect, it } from 'vitest';
import { generateKeyPair, toHex } from '../../protocol/index.ts';
import { checkTicket, parseTicketProductsFile, signTicket } from './tickets.ts';

const hub = generateKeyPair(new Uint8Array(32).fill(1));
const hubKey = toHex(hub.publicKey);
const product = { name: 'zone-a', priceMinor: 300, currency: 'EUR', validityMs: 3600_000, stations: ['a', 'b'] };
const wallet = 'ab'.repeat(32);

describe('tickets (seed 004 claims 15–18)', () => {
  it('signs deterministically and admits at a listed station while valid', () => {
    const t = signTicket(hub, product, wallet, 'cd'.repeat(16), 1000);
    expect(signTicket(hub, product, wallet, 'cd'.repeat(16), 1000)).toEqual(t);
    expect(t.body).toMatchObject({ validFrom: 1000, validUntil: 3_601_000, stations: ['a', 'b'], hubKey });
    expect(checkTicket(t, [hubKey], 'a', 2000)).toEqual({ ok: true });
    expect(checkTicket(t, [hubKey], 'c', 2000)).toEqual({ ok: false, code: 'TICKET_INVALID' });
    expect(checkTicket(t, [hubKey], 'a', 4_000_000)).toEqual({ ok: false, code: 'TICKET_INVALID' });
  });

  it('refuses a ticket from another key or with altered data', () => {
    const t = signTicket(hub, product, wallet, 'cd'.repeat(16), 1000);
    expect(checkTicket(t, ['00'.repeat(32)], 'a', 2000)).toEqual({ ok: false, code: 'UNKNOWN_ISSUER' });
    const altered = { ...t, body: { ...t.body, stations: [] } };
    expect(checkTicket(altered, [hubKey], 'z', 2000)).toEqual({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('parses a products file, refusing duplicates', () => {
    expect(parseTicketProductsFile({ products: [product] })).toMatchObject({ ok: true });
    expect(parseTicketProductsFile({ products: [product, product] })).toMatchObject({ ok: false, field: 'products.1.name' });
    expect(parseTicketProductsFile({ products: [{ ...product, validityMs: 5 }] })).toMatchObject({ ok: false, field: 'products.0.validityMs' });
  });
});
