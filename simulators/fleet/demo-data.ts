/**
 * The demo site `npm start` sets up: three merchants (a snack vending operator, a café with a
 * POS, the transit operator), their catalogs, a fare table and ticket products. Prices are
 * integer minor units (EUR cents). The same files can be imported with the operator CLI.
 */
import type { FareTable } from '../../protocol/index.ts';

export const DEMO_CURRENCY = 'EUR';

export const DEMO_MERCHANTS = {
  vending: 'vending.snacks',
  cafe: 'shop.cafe',
  transit: 'transit',
} as const;

export const DEMO_CATALOGS = [
  {
    merchantId: DEMO_MERCHANTS.vending,
    articles: [
      { sku: 'cola', name: 'Cola 0.33 l', priceMinor: 250, currency: DEMO_CURRENCY, slot: 1 },
      { sku: 'chips', name: 'Chips', priceMinor: 180, currency: DEMO_CURRENCY, slot: 2 },
      { sku: 'water', name: 'Water 0.5 l', priceMinor: 150, currency: DEMO_CURRENCY, slot: 3 },
      // seed 004 claim 14: restricted by the license's age attestation.
      { sku: 'beer', name: 'Beer 0.33 l', priceMinor: 390, currency: DEMO_CURRENCY, slot: 4, restriction: { minAge: 18 } },
    ],
  },
  {
    merchantId: DEMO_MERCHANTS.cafe,
    articles: [
      { sku: 'coffee', name: 'Coffee', priceMinor: 320, currency: DEMO_CURRENCY },
      { sku: 'sandwich', name: 'Sandwich', priceMinor: 550, currency: DEMO_CURRENCY },
      // seed 004 claim 13: the café settles the mug only after a 90 s cancellation window.
      { sku: 'mug', name: 'Souvenir mug', priceMinor: 1290, currency: DEMO_CURRENCY, cancelWindowMs: 90_000 },
      { sku: 'staff-meal', name: 'Staff meal', priceMinor: 400, currency: DEMO_CURRENCY, restriction: { groupsAny: ['staff'] } },
    ],
  },
] as const;

export const DEMO_FARES: FareTable = {
  currency: DEMO_CURRENCY,
  stations: { central: 0, park: 1, harbor: 2, airport: 3 },
  baseFareMinor: 150,
  perZoneMinor: 80,
  maxFareMinor: 600,
  maxTripMs: 2 * 3600_000,
  timeZone: 'Europe/Berlin',
  // Morning peak (07:00–09:00 local) costs 20 % more.
  timeBands: [{ fromMinute: 420, toMinute: 540, percent: 120 }],
};

export const DEMO_PRODUCTS = {
  products: [{ name: 'day-pass', priceMinor: 900, currency: DEMO_CURRENCY, validityMs: 24 * 3600_000, stations: [] }],
};

/** The simulated site: an entry gate and an exit gate at different stations, a vending machine, a POS. */
export const DEMO_TERMINALS = [
  { terminalId: 'gate-central', kind: 'gate', merchantId: DEMO_MERCHANTS.transit, station: 'central', gateMode: 'entry' },
  { terminalId: 'gate-harbor', kind: 'gate', merchantId: DEMO_MERCHANTS.transit, station: 'harbor', gateMode: 'exit' },
  { terminalId: 'vending-1', kind: 'vending', merchantId: DEMO_MERCHANTS.vending },
  { terminalId: 'pos-cafe', kind: 'pos', merchantId: DEMO_MERCHANTS.cafe },
] as const;

/** Simulated customers: attributes decide what they may buy; `topupMinor` is their first top-up. */
export const DEMO_CUSTOMERS = [
  { name: 'alice', ageOver: 18, groups: ['staff'], topupMinor: 5_000 },
  { name: 'bob', ageOver: 18, groups: [], topupMinor: 3_000 },
  { name: 'carol', ageOver: 18, groups: [], topupMinor: 4_000 },
  { name: 'dave', ageOver: 16, groups: [], topupMinor: 2_500 },
  { name: 'erin', ageOver: 18, groups: ['staff'], topupMinor: 6_000 },
  { name: 'frank', ageOver: 18, groups: [], topupMinor: 300 }, // often short of money
  { name: 'grace', ageOver: 0, groups: [], topupMinor: 2_000 },
  { name: 'heidi', ageOver: 18, groups: [], topupMinor: 3_500 },
] as const;
