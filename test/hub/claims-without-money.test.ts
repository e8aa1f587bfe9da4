// Claims no ledger row carries — a zero-fare exit's challenge and entry record, a ticket use — are
// in the registry's file before the gate gets its approval (then fsynced off the event loop), not
// in the registry's deferred group commit: a power cut cannot take a passage the gate was told of.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRequestId, signMessage, type Envelope } from '../../protocol/index.ts';
import { FARES, authorize, enroll, openHubFixture, readResult, register, signRequest, type HubFixture, type TestTerminal } from './kit.ts';

let fx: HubFixture;
let gateIn: TestTerminal;
let gateOut: TestTerminal;

beforeAll(async () => {
  fx = await openHubFixture();
  gateIn = await enroll(fx.hub, 'gate-in', 'gate', 'transit');
  gateOut = await enroll(fx.hub, 'gate-out', 'gate', 'transit');
  // Free within a zone: central → central costs nothing.
  fx.hub.importFares({ ...FARES, baseFareMinor: 0 });
});

afterAll(async () => {
  await fx.cleanup();
});

/** What another connection finds in the registry's file right now (the hub's own connection may hold more in its queue). */
function inFile(sql: string, key: string): boolean {
  const db = new Database(join(fx.dir, 'registry.sqlite'), { readonly: true });
  try {
    return db.prepare(sql).get(key) !== undefined;
  } finally {
    db.close();
  }
}

describe('claims without money', () => {
  it('a zero-fare exit: its challenge and entry record are in the file when the gate is answered', async () => {
    const w = await register(fx.hub);
    const entry: Envelope<'gate.admission'> = signMessage('gate.admission', { recordId: newRequestId(), wallet: w.id, terminalId: gateIn.id, station: 'central', time: fx.now - 60_000 }, gateIn.keyPair.secretKey);
    const authorization = authorize(gateOut, w, 'fare', 0, [], fx.now);
    const exit = signRequest(gateOut, { type: 'fare', authorization, license: w.license, entry, exitStation: 'central', exitTime: fx.now }, fx.now);
    expect(readResult(fx.hub, await fx.hub.handleRequest(gateOut.id, exit.bytes))).toMatchObject({ status: 'approved', amountMinor: 0, withdrawal: 'none' });
    expect(inFile('SELECT 1 FROM challenges WHERE challenge = ?', authorization.body.challenge)).toBe(true);
    expect(inFile('SELECT 1 FROM entry_records WHERE record_id = ?', entry.body.recordId)).toBe(true);
  });
});
