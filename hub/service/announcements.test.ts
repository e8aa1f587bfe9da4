import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAndVerify, generateKeyPair, toHex, topics } from '../../protocol/index.ts';
import { createHub, type Hub } from './hub.ts';

describe('keys announcement: the enrolled gates', () => {
  let dir: string;
  let hub: Hub;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapsettle-announce-'));
    hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const keys = () => {
    const a = hub.announcements().find((x) => x.topic === topics.announce('keys'));
    const d = decodeAndVerify(a?.payload ?? new Uint8Array(), 'announce.keys', hub.trustAnchorKey);
    if (!d.ok) throw new Error(d.code);
    return d.value.body;
  };
  const key = () => toHex(generateKeyPair().publicKey);

  it('lists every enrolled, unrevoked gate with its key (no other kinds); each change is a newer version', async () => {
    const k1 = key();
    const k2 = key();
    const v0 = keys().version;
    await hub.enrollTerminal({ terminalId: 'gate-b', kind: 'gate', merchantId: 'transit', publicKey: k1 });
    const v1 = keys();
    expect(v1.gates).toEqual([{ terminalId: 'gate-b', publicKey: k1 }]);
    expect(v1.version).toBeGreaterThan(v0); // a terminal applies only a newer version
    await hub.enrollTerminal({ terminalId: 'vend-1', kind: 'vending', merchantId: 'snacks', publicKey: key() });
    expect(keys().gates).toEqual(v1.gates);
    await hub.enrollTerminal({ terminalId: 'gate-a', kind: 'gate', merchantId: 'transit', publicKey: k2 });
    const v2 = keys();
    expect(v2.gates).toEqual([{ terminalId: 'gate-a', publicKey: k2 }, { terminalId: 'gate-b', publicKey: k1 }]);
    expect(v2.version).toBeGreaterThan(v1.version);
    expect(hub.revokeTerminal('gate-b')).toBe(true);
    const v3 = keys();
    expect(v3.gates).toEqual([{ terminalId: 'gate-a', publicKey: k2 }]);
    expect(v3.revokedTerminals).toContain('gate-b');
    expect(v3.version).toBeGreaterThan(v2.version);
  });
});
