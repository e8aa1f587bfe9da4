/** The example files the README points to stay valid: each parses with the schema that reads it. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHubConfig } from '../../bin/hub-config.ts';
import { parseCatalogFile } from '../../hub/rules/catalog.ts';
import { parseFareTableFile } from '../../hub/rules/fare-tables.ts';
import { parseTicketProductsFile } from '../../hub/rules/tickets.ts';
import { DEMO_CATALOGS, DEMO_FARES, DEMO_PRODUCTS } from '../../simulators/fleet/demo-data.ts';
import { parseConfig } from '../../terminal/config.ts';

const example = (name: string): unknown => JSON.parse(readFileSync(new URL(`../../docs/examples/${name}`, import.meta.url), 'utf8'));

describe('docs/examples', () => {
  it('hub configs parse', () => {
    expect(parseHubConfig(example('hub.json'), '/etc/tapsettle').mqtt).toMatchObject({ kind: 'embedded', port: 8883 });
    expect(parseHubConfig(example('hub-mosquitto.json'), '/etc/tapsettle').mqtt).toMatchObject({ kind: 'external', passwordFile: '/var/lib/tapsettle/hub/mosquitto-hub.password' });
  });

  it('terminal configs parse', () => {
    expect(parseConfig(example('terminal-gate.json'), '/etc/tapsettle', {})).toMatchObject({ kind: 'gate', gate: { station: 'central', mode: 'entry' } });
    expect(parseConfig(example('terminal-vending.json'), '/etc/tapsettle', {})).toMatchObject({ kind: 'vending' });
  });

  it('catalogs, fares and products parse and equal the demo data', () => {
    for (const c of DEMO_CATALOGS) {
      const raw = example(`catalog-${c.merchantId}.json`);
      expect(parseCatalogFile(raw).ok).toBe(true);
      expect(raw).toEqual(c);
    }
    expect(parseFareTableFile(example('fares.json')).ok).toBe(true);
    expect(example('fares.json')).toEqual(DEMO_FARES);
    expect(parseTicketProductsFile(example('products.json')).ok).toBe(true);
    expect(example('products.json')).toEqual(DEMO_PRODUCTS);
  });
});
