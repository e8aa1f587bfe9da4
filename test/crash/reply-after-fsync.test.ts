// seed 004 claim 24: an approval is sent only once the payer's withdrawal is durable. Observed at
// the system calls of the running hub process (strace attached to all its threads): for each
// purchase, something is written to the ledger's WAL after the request is read, and an fsync of
// that WAL has returned before the reply's bytes are written to the terminal's socket. Both commit
// paths are covered: one purchase at a time (the engine's thread commits a quiet batch itself) and
// bursts (the ledger's writer thread commits). A ticket use and a history query move no money, so
// no ledger row carries their claims: those must be fsynced in the registry's WAL before the
// answer leaves.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createHub } from '../../hub/service/hub.ts';
import { decodeAndVerify, type Envelope } from '../../protocol/index.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { PRODUCTS, authorize, enroll, historyQuery, register, signRequest } from '../hub/kit.ts';
import { purchaseFactory, seedHub, startHubProcess, type HubProcess } from './hub-process.ts';
import { straceAvailable, traceProcess, type Syscall } from './syscall-trace.ts';

const TERMINALS = 8;
const BURSTS = 3;
const hasStrace = straceAvailable();
if (!hasStrace) console.warn('reply-after-fsync: strace not found (Debian package `strace`): skipping the system-call test');

const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-fsync-'));
const ticketDataDir = mkdtempSync(join(tmpdir(), 'tapsettle-fsync-ticket-'));
let hub: HubProcess | undefined;

afterAll(() => {
  if (hub && hub.proc.child.exitCode === null) hub.proc.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(ticketDataDir, { recursive: true, force: true });
});

const TRACED = ['read', 'readv', 'recvfrom', 'write', 'writev', 'sendmsg', 'pwrite64', 'pwritev', 'fsync', 'fdatasync'];
const walOf = (file: 'ledger' | 'registry') => (c: Syscall) => c.path?.endsWith(`/${file}.sqlite-wal`) === true;
const isLedgerWal = walOf('ledger');
const isSync = (c: Syscall) => c.name === 'fsync' || c.name === 'fdatasync';
const onSocket = (c: Syscall) => c.path?.startsWith('socket:') === true;

/** Why the reply to `requestId` is not known durable in `isWal` before it left, or undefined when it is. */
function durableBeforeReply(calls: readonly Syscall[], requestId: string, isWal = isLedgerWal): string | undefined {
  const arrived = calls.find((c) => onSocket(c) && c.name.startsWith('read') && c.text.includes('settlement.request') && c.text.includes(requestId));
  if (!arrived) return 'request not seen arriving';
  const replied = calls.find((c) => onSocket(c) && c.name.startsWith('write') && c.start > arrived.start && c.text.includes('settlement.result') && c.text.includes(requestId));
  if (!replied) return 'reply not seen leaving';
  const between = calls.filter((c) => isWal(c) && c.start > arrived.end && c.end < replied.start);
  const firstWrite = between.find((c) => c.name.startsWith('pwrite'));
  if (!firstWrite) return 'no WAL write between the request and its reply';
  if (!between.some((c) => isSync(c) && c.start > firstWrite.start)) return `no WAL fsync returned after its write (${firstWrite.start}) and before the reply (${replied.start})`;
  return undefined;
}

describe.skipIf(!hasStrace)('a purchase approval and the ledger fsync, at the system calls', () => {
  it('writes every approval to the socket only after an fsync of the withdrawal in the ledger WAL has returned', async () => {
    const { terminals, hubKey } = await seedHub(dataDir, { terminals: TERMINALS, walletsPerTerminal: 1, startMinor: 100_000 });
    hub = await startHubProcess(dataDir, 0);
    const url = hub.url;
    const clients = await Promise.all(terminals.map((t) => connectTerminal({ url, terminalId: t.terminalId, secretKey: t.secretKey })));
    const nextPurchase = purchaseFactory();
    const approved: string[] = [];
    const buy = async (i: number) => {
      const req = nextPurchase(terminals[i]!.parties[0]!);
      const reply = decodeAndVerify(await clients[i]!.request(req.bytes, req.requestId, 20_000), 'settlement.result', hubKey);
      expect(reply.ok && reply.value.body.status).toBe('approved');
      approved.push(req.requestId);
    };

    const tracer = await traceProcess(hub.proc.child.pid!, TRACED, join(dataDir, 'hub.strace'));
    let calls: Syscall[];
    try {
      for (let i = 0; i < 3; i++) await buy(0);
      for (let b = 0; b < BURSTS; b++) await Promise.all(terminals.map((_, i) => buy(i)));
    } finally {
      calls = await tracer.stop();
    }
    await Promise.all(clients.map((c) => c.close()));
    hub.proc.child.kill('SIGTERM');
    expect(await hub.proc.exited()).toBe(0);

    expect(approved).toHaveLength(3 + BURSTS * TERMINALS);
    const late = approved.map((id) => [id, durableBeforeReply(calls, id)] as const).filter(([, why]) => why !== undefined);
    expect(late).toEqual([]);
    // Both commit paths ran: the hub's own thread and the writer thread fsynced the ledger WAL.
    const syncingThreads = new Set(calls.filter((c) => isLedgerWal(c) && isSync(c)).map((c) => c.tid));
    expect(syncingThreads.has(hub.proc.child.pid!)).toBe(true);
    expect(syncingThreads.size).toBeGreaterThan(1);
  }, 120_000);

  it('approves a ticket use and answers a history query only after an fsync of its claim in the registry WAL returned', async () => {
    const seeding = await createHub({ dataDir: ticketDataDir, logger: pino({ level: 'silent' }) });
    const gate = await enroll(seeding, 'gate-1', 'gate', 'transit');
    const wallet = await register(seeding);
    const hubKey = seeding.hubPublicKey;
    try {
      seeding.importProducts(PRODUCTS);
      await seeding.topUp({ wallet: wallet.id, amountMinor: 10_000, operatorId: 'fsync-test' });
    } finally {
      await seeding.close();
    }
    hub = await startHubProcess(ticketDataDir, 0);
    const client = await connectTerminal({ url: hub.url, terminalId: gate.id, secretKey: gate.keyPair.secretKey });
    const ask = async (req: { requestId: string; bytes: Uint8Array }) => {
      const reply = decodeAndVerify(await client.request(req.bytes, req.requestId, 20_000), 'settlement.result', hubKey);
      if (!reply.ok) throw new Error(`${reply.code}: ${reply.detail}`);
      return reply.value.body;
    };
    const tickets: Envelope<'ticket'>[] = [];
    for (let i = 0; i < 3; i++) {
      const sale = await ask(signRequest(gate, { type: 'ticket.sale', authorization: authorize(gate, wallet, 'ticket', 700, [], Date.now()), license: wallet.license, product: 'day-pass' }, Date.now()));
      expect(sale.status).toBe('approved');
      tickets.push(sale.ticket!);
    }

    const tracer = await traceProcess(hub.proc.child.pid!, TRACED, join(ticketDataDir, 'hub.strace'));
    const answered: string[] = [];
    let calls: Syscall[];
    try {
      for (const ticket of tickets) {
        const use = signRequest(gate, { type: 'ticket.use', ticket, station: 'park', usedAt: Date.now() }, Date.now());
        expect((await ask(use)).status).toBe('approved');
        answered.push(use.requestId);
        const history = signRequest(gate, { type: 'history', query: historyQuery(wallet, Date.now()) }, Date.now());
        expect((await ask(history)).statement?.body.entries.length).toBeGreaterThan(0);
        answered.push(history.requestId);
      }
    } finally {
      calls = await tracer.stop();
    }
    await client.close();
    hub.proc.child.kill('SIGTERM');
    expect(await hub.proc.exited()).toBe(0);

    expect(answered).toHaveLength(2 * tickets.length);
    expect(answered.map((id) => [id, durableBeforeReply(calls, id, walOf('registry'))]).filter(([, why]) => why !== undefined)).toEqual([]);
  }, 120_000);
});
