// seed 004 claim 24: an approval is sent only once the payer's withdrawal is durable. Observed at
// the system calls of the running hub process (strace attached to all its threads): for each
// purchase, the WAL page write that carries its log row (found by the row's request id bytes)
// comes after the request is read, and an fsync of that WAL which started after that write has
// returned 0 before the reply's bytes are written to the terminal's socket. Both commit paths are
// covered: one purchase at a time (the engine's thread commits a quiet batch itself) and bursts
// (the ledger's writer thread commits). A ticket use and a history query move no money, so no
// ledger row carries their claims: the registry row naming the request must be fsynced in the
// registry's WAL the same way before the answer leaves.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineRequestId } from '../../hub/service/engine-ids.ts';
import { decodeAndVerify, type Envelope } from '../../protocol/index.ts';
import { connectTerminal } from '../../simulators/load/terminal-client.ts';
import { authorize, historyQuery, signRequest } from '../hub/kit.ts';
import { purchaseFactory, seedHub, startHubProcess, type HubProcess } from './hub-process.ts';
import { bytesOf, traceProcess, tracingSupport, type Syscall } from './syscall-trace.ts';

const TERMINALS = 8;
const BURSTS = 3;
const tracing = await tracingSupport();
if (!tracing.ok) console.warn(`reply-after-fsync: skipping the system-call tests: ${tracing.reason}`);

const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-fsync-'));
const ticketDataDir = mkdtempSync(join(tmpdir(), 'tapsettle-fsync-ticket-'));
const hubs: HubProcess[] = [];

afterAll(() => {
  for (const hub of hubs) if (hub.proc.child.exitCode === null) hub.proc.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(ticketDataDir, { recursive: true, force: true });
});

const TRACED = ['read', 'readv', 'recvfrom', 'write', 'writev', 'sendmsg', 'pwrite64', 'pwritev', 'fsync', 'fdatasync'];
const walOf = (file: 'ledger' | 'registry') => (c: Syscall) => c.path?.endsWith(`/${file}.sqlite-wal`) === true;
const isSync = (c: Syscall) => (c.name === 'fsync' || c.name === 'fdatasync') && / = 0 </.test(c.text);
const onSocket = (c: Syscall) => c.path?.startsWith('socket:') === true;

/** The data of each call, decoded once. */
function dataOf(): (c: Syscall) => Buffer {
  const cache = new Map<Syscall, Buffer>();
  return (c) => {
    let b = cache.get(c);
    if (!b) cache.set(c, (b = bytesOf(c)));
    return b;
  };
}

interface Durability {
  /** The WAL write that carried the request's row. */
  readonly written: Syscall;
}

/**
 * For `requestId`: the WAL write (of `wal`) carrying `row` between its arrival and its reply, and
 * an fsync of that WAL that began after the write and returned 0 before the reply; or why not.
 */
function durableBeforeReply(calls: readonly Syscall[], data: (c: Syscall) => Buffer, requestId: string, wal: (c: Syscall) => boolean, row: Buffer): Durability | string {
  const id = Buffer.from(requestId);
  const has = (c: Syscall, ...needles: (Buffer | string)[]) => needles.every((n) => data(c).includes(n));
  const arrived = calls.find((c) => onSocket(c) && c.name.startsWith('read') && has(c, 'settlement.request', id));
  if (!arrived) return 'request not seen arriving';
  const replied = calls.find((c) => onSocket(c) && c.name.startsWith('write') && c.start > arrived.start && has(c, 'settlement.result', id));
  if (!replied) return 'reply not seen leaving';
  const written = calls.find((c) => wal(c) && c.name.startsWith('pwrite') && c.start > arrived.start && has(c, row));
  if (!written) return 'its row never written to the WAL';
  if (written.end > replied.start) return `its row written to the WAL (${written.start}) after the reply left (${replied.start})`;
  if (!calls.some((c) => wal(c) && isSync(c) && c.start >= written.end && c.end <= replied.start)) return `no WAL fsync began after its row was written (${written.end}) and returned before the reply (${replied.start})`;
  return { written };
}

const failures = (results: Array<[string, Durability | string]>) => results.filter(([, r]) => typeof r === 'string');

describe.skipIf(!tracing.ok)('a purchase approval and the ledger fsync, at the system calls', () => {
  it('writes every approval to the socket only after an fsync of the withdrawal in the ledger WAL has returned', async () => {
    const { terminals, hubKey } = await seedHub(dataDir, { terminals: TERMINALS, walletsPerTerminal: 1, startMinor: 100_000 });
    const hub = await startHubProcess(dataDir, 0);
    hubs.push(hub);
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
    const data = dataOf();
    // The ledger keys its log row by the 16 bytes of the engine's request id.
    const results = approved.map((id): [string, Durability | string] => [id, durableBeforeReply(calls, data, id, walOf('ledger'), Buffer.from(engineRequestId(id), 'hex'))]);
    expect(failures(results)).toEqual([]);
    // Both commit paths wrote the rows: the hub's own thread and the ledger's writer thread.
    const writers = new Set(results.map(([, r]) => (r as Durability).written.tid));
    expect(writers.has(hub.proc.child.pid!)).toBe(true);
    expect(writers.size).toBe(2);
  }, 120_000);

  it('approves a ticket use and answers a history query only after an fsync of its claim in the registry WAL returned', async () => {
    const { gates, hubKey } = await seedHub(ticketDataDir, { terminals: 0, gates: 1, walletsPerTerminal: 1, startMinor: 10_000 });
    const gate = gates[0]!.terminal;
    const wallet = gates[0]!.wallets[0]!;
    const hub = await startHubProcess(ticketDataDir, 0);
    hubs.push(hub);
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
    // The registry's rows (the ticket use, the query's challenge) name the request id as text.
    const data = dataOf();
    expect(failures(answered.map((id): [string, Durability | string] => [id, durableBeforeReply(calls, data, id, walOf('registry'), Buffer.from(id))]))).toEqual([]);
  }, 120_000);
});
