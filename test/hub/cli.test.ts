// The operator CLI as a real child process on a temp data dir: typed errors with exit code 2 that
// name the field, nothing written on bad input, verify-ledger exits non-zero on a discrepancy.
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWalletLicense, type Envelope } from '../../protocol/index.ts';
import { createHub } from '../../hub/service/hub.ts';
import { runCli, SNACKS } from './kit.ts';

let dir: string;
const cli = (...args: string[]) => runCli(join(dir, 'hub'), args);

function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tapsettle-cli-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('hub CLI', () => {
  let wallet = '';

  it('refuses a folder without a hub unless told to create one', async () => {
    const r = await cli('blocklist', 'list');
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining('invalid data-dir: no hub at')]);
    expect(existsSync(join(dir, 'hub', 'hub-signing.key'))).toBe(false);
  });

  it('registers a wallet (license verifies against the issuer key), keys are mode 0600', async () => {
    const r = await cli('register-wallet', '--init', '--name', 'Alice Example', '--age-over', '21', '--groups', 'staff');
    expect(r.code).toBe(0);
    const out = json<{ wallet: string; secretKey: string; license: Envelope<'wallet.license'>; issuerKey: string }>(r.stdout);
    wallet = out.wallet;
    expect(out.secretKey).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyWalletLicense(out.license, { trustedIssuers: [out.issuerKey], nowMs: Date.now() }).ok).toBe(true);
    expect(out.license.body).toMatchObject({ ageOver: 21, groups: ['staff'] });
    expect(r.stdout + r.stderr).not.toContain('Alice');
    for (const f of ['hub-signing.key', 'issuer.key', 'registry.sqlite', 'ledger.sqlite']) expect(statSync(join(dir, 'hub', f)).mode & 0o777).toBe(0o600);
  });

  it('reissues the license: attributes kept unless given, a new serial in force; bad input refused naming the option', async () => {
    const r = await cli('reissue-license', wallet, '--groups', '', '--validity-days', '30');
    expect(r.code).toBe(0);
    const out = json<{ license: Envelope<'wallet.license'>; issuerKey: string }>(r.stdout);
    expect(out.license.body).toMatchObject({ wallet, ageOver: 21, groups: [] });
    expect(out.license.body.notAfter - out.license.body.notBefore).toBe(30 * 24 * 3600_000 + 60_000);
    expect(verifyWalletLicense(out.license, { trustedIssuers: [out.issuerKey], nowMs: Date.now() }).ok).toBe(true);
    const bad = await cli('reissue-license', wallet, '--offline-limit', '-5');
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('offline-limit')]);
    const unknown = await cli('reissue-license', 'ab'.repeat(32));
    expect([unknown.code, unknown.stdout + unknown.stderr]).toEqual([1, expect.stringContaining('UNKNOWN_WALLET')]);
  });

  it('enrolls a terminal, tops up and shows the account', async () => {
    const e = await cli('enroll-terminal', '--id', 'pos-1', '--kind', 'pos', '--merchant', 'snacks');
    expect(e.code).toBe(0);
    expect(json<{ certificate: Envelope<'terminal.certificate'> }>(e.stdout).certificate.body).toMatchObject({ terminalId: 'pos-1', kind: 'pos' });
    const t = await cli('top-up', '--wallet', wallet, '--amount', '1500', '--operator', 'alice-op');
    expect(t.code).toBe(0);
    expect(json<{ status: string }>(t.stdout).status).toBe('approved');
    const s = await cli('show-account', wallet);
    expect(json<{ account: { balanceMinor: number }; history: unknown[] }>(s.stdout).account.balanceMinor).toBe(1500);
    // A ledger decline exits 1 and prints the wire's code, as a refusal does.
    const refund = await cli('refund', json<{ requestId: string }>(t.stdout).requestId);
    expect([refund.code, json<{ status: string; code: string }>(refund.stdout)]).toEqual([1, expect.objectContaining({ status: 'declined', code: 'NOT_CANCELLABLE' })]);
  });

  it('bad input: exit 2, names the field, writes nothing', async () => {
    const bad = join(dir, 'bad-catalog.json');
    writeFileSync(bad, JSON.stringify({ merchantId: 'snacks', articles: [{ ...SNACKS.articles[0], priceMinor: -5 }] }));
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{ nope');
    // A price typed twice: refused, not the last one taken.
    const twice = join(dir, 'twice-catalog.json');
    writeFileSync(twice, '{"merchantId": "snacks", "articles": [{"sku": "cola", "name": "Cola", "priceMinor": 250, "priceMinor": 25, "currency": "EUR"}]}');
    // Independent refusals run side by side (each is a process start).
    const [amount, huge, kind, missing, cat, fares, refund, dup] = await Promise.all([
      cli('top-up', '--wallet', wallet, '--amount', '12.5', '--operator', 'op'),
      // A few digits too many: refused, not minted.
      cli('top-up', '--wallet', wallet, '--amount', '999999999999999', '--operator', 'op'),
      cli('enroll-terminal', '--id', 'x-1', '--kind', 'toaster', '--merchant', 'snacks'),
      cli('top-up', '--wallet', wallet),
      cli('import-catalog', bad),
      cli('import-fares', notJson),
      // Valid input, unknown request: refused (1), not bad input (2). The only one here that opens the hub.
      cli('refund', 'ab'.repeat(16)),
      cli('import-catalog', twice),
    ]);
    expect([dup.code, dup.stderr]).toEqual([2, expect.stringContaining('duplicate key "priceMinor" at line 1')]);
    expect(refund.code).toBe(1);
    expect(refund.stderr).toContain('NOT_FOUND');
    expect(amount.code).toBe(2);
    expect(amount.stderr).toContain('amount');
    expect([huge.code, huge.stderr]).toEqual([2, expect.stringContaining('invalid amount: at most 1000000 minor units per top-up')]);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('kind');
    expect(missing.code).toBe(2);
    expect(cat.code).toBe(2);
    expect(cat.stderr).toContain('articles.0.priceMinor');
    expect(fares.code).toBe(2);
    const s = await cli('show-account', wallet);
    expect(json<{ account: { balanceMinor: number } }>(s.stdout).account.balanceMinor).toBe(1500);
    const db = new Database(join(dir, 'hub', 'registry.sqlite'), { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM catalogs').get()).toEqual({ n: 0 });
      expect(db.prepare("SELECT COUNT(*) AS n FROM terminals WHERE terminal_id = 'x-1'").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });

  it('imports a catalog and manages the blocklist', async () => {
    const good = join(dir, 'catalog.json');
    writeFileSync(good, JSON.stringify(SNACKS));
    const c = await cli('import-catalog', good);
    expect(c.code).toBe(0);
    expect(json<{ version: number }>(c.stdout).version).toBe(1);
    expect(c.stderr).not.toContain('warning');
    // A merchant nobody sells for (a typo): imported, and the operator is told.
    const typo = join(dir, 'typo.json');
    writeFileSync(typo, JSON.stringify({ ...SNACKS, merchantId: 'snakcs' }));
    const t = await cli('import-catalog', typo);
    expect(t.code).toBe(0);
    expect(t.stderr).toContain("warning: no enrolled terminal sells for merchant 'snakcs' (a typo?)");
    // One process per data dir at a time (hub.lock): these run one after the other.
    const added = await cli('blocklist', 'add', wallet, '--reason', 'lost card');
    expect(added.code).toBe(0);
    const list = json<{ version: number; wallets: Array<{ wallet: string }> }>((await cli('blocklist', 'list')).stdout);
    expect(list.wallets.map((w) => w.wallet)).toEqual([wallet]);
  });

  it('reveals an identity only as a logged action', async () => {
    const r = await cli('reveal-identity', wallet, '--operator', 'auditor-1', '--reason', 'fraud case 17');
    expect(r.code).toBe(0);
    expect(json<{ identity: { name: string } }>(r.stdout).identity.name).toBe('Alice Example');
    const log = json<Array<{ wallet: string; operator: string; reason: string }>>((await cli('disclosure-log')).stdout);
    expect(log).toMatchObject([{ wallet, operator: 'auditor-1', reason: 'fraud case 17' }]);
  });

  it('rotates the hub key: the next key is planned and listed, a second rotation is refused, a leak replaces the ring, bad hours exit 2', async () => {
    const before = json<{ signing: string; trustAnchor: string; keys: Array<{ publicKey: string }> }>((await cli('hub-keys')).stdout);
    expect(before.keys.map((k) => k.publicKey)).toEqual([before.signing]);
    const tooFar = await cli('rotate-hub-key', '--activate-in-hours', '99999');
    expect([tooFar.code, tooFar.stderr]).toEqual([2, expect.stringContaining('invalid activate-in-hours: at most 8784 (the ticket horizon, 366 days)')]);
    const bad = await cli('rotate-hub-key', '--activate-in-hours', '-3');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('activate-in-hours');
    // The CLI's cap is the key ring's: the longest retirement it allows is planned.
    const r = await cli('rotate-hub-key', '--activate-in-hours', '48', '--retire-after-hours', '8784');
    expect(r.code).toBe(0);
    const out = json<{ next: { publicKey: string; notBefore: number }; keys: Array<{ publicKey: string; notBefore: number; notAfter: number }> }>(r.stdout);
    expect(out.keys).toHaveLength(2);
    expect(out.keys[0]).toMatchObject({ publicKey: before.signing, notAfter: out.next.notBefore + 8784 * 3600_000 });
    expect(out.next.notBefore - Date.now()).toBeGreaterThan(47 * 3600_000);
    expect(statSync(join(dir, 'hub', `hub-signing-${out.next.publicKey.slice(0, 16)}.key`)).mode & 0o777).toBe(0o600);
    // Still the old key signing and anchoring until the new one starts.
    const after = json<{ signing: string; trustAnchor: string }>((await cli('hub-keys')).stdout);
    expect(after).toMatchObject({ signing: before.signing, trustAnchor: before.signing });
    const again = await cli('rotate-hub-key');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('ROTATION_REFUSED');
    // A leak does not wait for the pending key: the whole ring is replaced by one new key.
    const leak = await cli('rotate-hub-key', '--compromised');
    expect(leak.code).toBe(0);
    const replaced = json<{ next: { publicKey: string }; keys: Array<{ publicKey: string }> }>(leak.stdout);
    expect(replaced.keys.map((k) => k.publicKey)).toEqual([replaced.next.publicKey]);
    expect(json<{ signing: string; trustAnchor: string }>((await cli('hub-keys')).stdout)).toMatchObject({ signing: replaced.next.publicKey, trustAnchor: replaced.next.publicKey });
    const reissued = await cli('reissue-certificate', 'pos-1');
    expect(reissued.code).toBe(0);
    expect(json<{ certificate: Envelope<'terminal.certificate'> }>(reissued.stdout).certificate.body).toMatchObject({ terminalId: 'pos-1', issuerKey: replaced.next.publicKey });
    expect((await cli('reissue-certificate', 'nobody')).code).toBe(1);
  }, 90_000); // eight CLI processes, each a tsx start: slow on a loaded 2-core machine

  it('refuses to enroll a key another terminal holds, revoked or live (exit 2, nothing written)', async () => {
    const first = await cli('enroll-terminal', '--id', 'pos-stolen', '--kind', 'pos', '--merchant', 'snacks');
    expect(first.code).toBe(0);
    const stolenKey = json<{ certificate: Envelope<'terminal.certificate'> }>(first.stdout).certificate.body.publicKey;
    expect((await cli('revoke-terminal', 'pos-stolen')).code).toBe(0);
    const again = await cli('enroll-terminal', '--id', 'pos-2', '--kind', 'pos', '--merchant', 'snacks', '--public-key', stolenKey);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining('invalid public-key: terminal pos-stolen (revoked) already holds this key')]);
    const db = new Database(join(dir, 'hub', 'registry.sqlite'), { readonly: true });
    const live = (db.prepare("SELECT public_key FROM terminals WHERE terminal_id = 'pos-1'").get() as { public_key: string }).public_key;
    const rows = db.prepare("SELECT COUNT(*) AS n FROM terminals WHERE terminal_id = 'pos-2'").get() as { n: number };
    db.close();
    expect(rows.n).toBe(0);
    const copy = await cli('enroll-terminal', '--id', 'pos-3', '--kind', 'pos', '--merchant', 'snacks', '--public-key', live);
    expect([copy.code, copy.stderr]).toEqual([2, expect.stringContaining('invalid public-key: terminal pos-1 already holds this key')]);
  }, 60_000);

  it('bounds --validity-days as operator input: exit 2 naming it, nothing written', async () => {
    const count = (table: string) => {
      const db = new Database(join(dir, 'hub', 'registry.sqlite'), { readonly: true });
      try {
        return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    const wallets = count('wallets');
    const certificate = () => {
      const db = new Database(join(dir, 'hub', 'registry.sqlite'), { readonly: true });
      try {
        return db.prepare("SELECT certificate FROM terminals WHERE terminal_id = 'pos-1'").get();
      } finally {
        db.close();
      }
    };
    const cert = certificate();
    const [overflow, tooLong, reissue] = await Promise.all([
      cli('register-wallet', '--validity-days', '104249990'),
      cli('register-wallet', '--validity-days', '100000000'),
      cli('reissue-certificate', 'pos-1', '--validity-days', '36501'),
    ]);
    for (const r of [overflow, tooLong, reissue]) expect([r.code, r.stderr]).toEqual([2, expect.stringContaining('invalid validity-days: at most 36500 (100 years)')]);
    expect(count('wallets')).toBe(wallets);
    expect(certificate()).toEqual(cert);
  }, 60_000);

  it('while a hub runs: read-only commands work, writing ones are refused', async () => {
    const hub = await createHub({ dataDir: join(dir, 'hub'), holdReleaseIntervalMs: 0 });
    try {
      const [verify, topUp] = await Promise.all([cli('verify-ledger'), cli('top-up', '--wallet', wallet, '--amount', '5', '--operator', 'op')]);
      expect(verify.code).toBe(0);
      expect(topUp.code).toBe(1);
      expect(topUp.stderr).toContain('in use by process');
    } finally {
      await hub.close();
    }
  });

  it('verify-ledger passes, then exits non-zero and names the account after tampering', async () => {
    const ok = await cli('verify-ledger');
    expect(ok.code).toBe(0);
    expect(json<{ ok: boolean }>(ok.stdout).ok).toBe(true);
    const db = new Database(join(dir, 'hub', 'ledger.sqlite'));
    // Tamper with one stored balance behind the journal's back (the newest account).
    db.prepare('UPDATE accounts SET balance_minor = balance_minor + 1 WHERE num = (SELECT MAX(num) FROM accounts)').run();
    db.close();
    const bad = await cli('verify-ledger');
    expect(bad.code).toBe(1);
    expect(json<{ ok: boolean; firstDiscrepancy: unknown }>(bad.stdout).firstDiscrepancy).toMatchObject({ kind: 'balance_mismatch' });
    expect(bad.stderr).toContain('balance_mismatch');
  });
});
