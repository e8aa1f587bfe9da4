/**
 * The example files the README points to stay valid: each parses with the schema that reads it,
 * and the terminal examples fit the documented hub (docs/examples/hub.json: TLS on 8883, its
 * certificate as the terminals' caFile) and name stations of docs/examples/fares.json.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHubConfig } from '../../bin/hub-config.ts';
import { parseCatalogFile } from '../../hub/rules/catalog.ts';
import { parseFareTableFile } from '../../hub/rules/fare-tables.ts';
import { parseTicketProductsFile } from '../../hub/rules/tickets.ts';
import { DEMO_CATALOGS, DEMO_FARES, DEMO_PRODUCTS } from '../../simulators/fleet/demo-data.ts';
import { ConfigError, parseConfig, type TerminalConfig } from '../../terminal/config.ts';

const read = (path: string): unknown => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'));
const example = (name: string): unknown => read(`docs/examples/${name}`);

/** terminal/deploy/terminal.example.json leaves the two keys to fill in from enroll-terminal's output. */
const DEPLOY_EXAMPLE = 'terminal/deploy/terminal.example.json';
const PLACEHOLDER = /^<.*>$/;
function fillPlaceholders(value: unknown): unknown {
  if (typeof value === 'string') return PLACEHOLDER.test(value) ? 'ab'.repeat(32) : value;
  if (Array.isArray(value)) return value.map(fillPlaceholders);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillPlaceholders(v)]));
  return value;
}
function configIssues(raw: unknown): string[] {
  try {
    parseConfig(raw, '/etc/tapsettle', {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('docs/examples', () => {
  it('hub configs parse', () => {
    expect(parseHubConfig(example('hub.json'), '/etc/tapsettle').mqtt).toMatchObject({ kind: 'embedded', port: 8883 });
    expect(parseHubConfig(example('hub-mosquitto.json'), '/etc/tapsettle').mqtt).toMatchObject({ kind: 'external', passwordFile: '/var/lib/tapsettle/hub/mosquitto-hub.password' });
  });

  it('terminal configs parse', () => {
    expect(parseConfig(example('terminal-gate.json'), '/etc/tapsettle', {})).toMatchObject({ kind: 'gate', gate: { station: 'central', mode: 'entry' } });
    expect(parseConfig(example('terminal-vending.json'), '/etc/tapsettle', {})).toMatchObject({ kind: 'vending' });
    // The deploy example parses once its two keys are filled in; until then --check names just them.
    expect(configIssues(read(DEPLOY_EXAMPLE))).toEqual([
      'hub.hubKey: expected 64 lowercase hex chars (an Ed25519 public key)',
      'hub.issuerKeys.0: expected 64 lowercase hex chars (an Ed25519 public key)',
    ]);
    expect(parseConfig(fillPlaceholders(read(DEPLOY_EXAMPLE)), '/etc/tapsettle', {})).toMatchObject({ kind: 'gate', gate: { station: 'park', mode: 'entry' } });
  });

  it('terminal examples connect to the documented hub (TLS on its port, its certificate as caFile) and gates name stations of the fare table', () => {
    const hub = parseHubConfig(example('hub.json'), '/etc/tapsettle').mqtt;
    if (hub.kind !== 'embedded' || !hub.tls) throw new Error('docs/examples/hub.json: expected an embedded broker with TLS');
    const stations = Object.keys((example('fares.json') as { stations: Record<string, number> }).stations);
    const terminals: Array<[string, TerminalConfig]> = [
      ['terminal-gate.json', parseConfig(example('terminal-gate.json'), '/etc/tapsettle', {})],
      ['terminal-vending.json', parseConfig(example('terminal-vending.json'), '/etc/tapsettle', {})],
      [DEPLOY_EXAMPLE, parseConfig(fillPlaceholders(read(DEPLOY_EXAMPLE)), '/etc/tapsettle', {})],
    ];
    for (const [name, t] of terminals) {
      const url = new URL(t.hub.url);
      expect([name, url.protocol, Number(url.port)]).toEqual([name, 'mqtts:', hub.port]);
      // The kiosk holds a copy of the hub's certificate at the same path (terminal/README.md, step 6).
      expect([name, t.hub.caFile]).toEqual([name, hub.tls.certFile]);
      if (t.gate) expect(stations, `${name}: station ${t.gate.station}`).toContain(t.gate.station);
    }
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
