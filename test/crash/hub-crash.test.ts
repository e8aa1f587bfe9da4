// Crash test over MQTT: the hub runs as its own process (`bin/start.ts --no-site`), POS terminals
// send signed purchases and exit gates fares (decided at the gate or by the hub) over the embedded
// broker, and all resend the SAME bytes whenever no reply comes (as
// hub/mqtt/README.md tells a terminal to), and the hub is SIGKILLed at random moments and
// restarted on the same data folder. Afterwards, what the mission promises must hold: every
// request got an answer, a resend never changed it, a wallet's authorization used before a crash
// is refused under a new request id after it, and each wallet's balance moved by exactly its
// approved requests, once each, in a ledger that verifies.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createHub } from '../../hub/service/hub.ts';
import { engineRequestId, ledgerDecision } from '../../hub/service/engine-ids.ts';
import { decodeAndVerify, newRequestId } from '../../protocol/index.ts';
import { fastSignMessage } from '../../simulators/load/purchase-request.ts';
import { connectTerminal, type TerminalClient } from '../../simulators/load/terminal-client.ts';
import { fareExit, purchaseFactory, restartablePort, seedHub, startHubProcess, type HubProcess } from './hub-process.ts';

const TERMINALS = 12;
const GATES = 4;
const WALLETS_PER_TERMINAL = 2;
const START_MINOR = 1_000_000;
const KILLS = 5;
/** A terminal resends after this long without a reply (the hub may be down or restarting). */
const RESEND_AFTER_MS = 1500;

interface Answer {
  readonly status: 'approved' | 'declined';
  readonly code: string | undefined;
  readonly amountMinor: number;
}

interface Sent {
  readonly terminalId: string;
  readonly wallet: string;
  readonly bytes: Buffer;
  /** The same wallet authorization in a new request under this id, signed by the same terminal. */
  readonly resign: (requestId: string) => Buffer;
  /** Every verified answer a waiting request took, in order: the first one, then redeliveries'. */
  readonly answers: Answer[];
  resends: number;
}

const dataDir = mkdtempSync(join(tmpdir(), 'tapsettle-hub-crash-'));
let hub: HubProcess | undefined;

afterAll(() => {
  if (hub && hub.proc.child.exitCode === null) hub.proc.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A reply that is there but wrong: the test fails, no resend hides it. */
class BadReply extends Error {}

function answerOf(bytes: Buffer, hubKey: string, requestId: string): Answer {
  const decoded = decodeAndVerify(bytes, 'settlement.result', hubKey);
  if (!decoded.ok) throw new BadReply(`reply to ${requestId} is not a hub-signed result: ${decoded.code} ${decoded.detail}`);
  const b = decoded.value.body;
  if (b.requestId !== requestId) throw new BadReply(`reply to ${requestId} names ${b.requestId}`);
  return { status: b.status, code: b.code, amountMinor: b.amountMinor };
}

describe('the hub SIGKILLed under MQTT load', () => {
  it('answers every resent request the same way and charges each approved purchase and fare exactly once', async () => {
    const { terminals, gates, hubKey } = await seedHub(dataDir, { terminals: TERMINALS, gates: GATES, walletsPerTerminal: WALLETS_PER_TERMINAL, startMinor: START_MINOR });
    const first = (hub = await startHubProcess(dataDir, await restartablePort()));
    const sent = new Map<string, Sent>();
    let stopping = false;

    const connect = (terminalId: string, secretKey: Uint8Array) => connectTerminal({ url: first.url, terminalId, secretKey, reconnectPeriodMs: 200 });
    const clients: TerminalClient[] = await Promise.all(terminals.map((t) => connect(t.terminalId, t.secretKey)));
    const gateClients: TerminalClient[] = await Promise.all(gates.map((g) => connect(g.terminal.id, g.terminal.keyPair.secretKey)));
    // Every reply that arrives, also the late ones no request waits for any more.
    const replies = new Map<string, Answer[]>();
    let onNextReply: (() => void) | undefined;
    for (const c of [...clients, ...gateClients]) {
      c.onReply((payload) => {
        onNextReply?.();
        onNextReply = undefined;
        const decoded = decodeAndVerify(payload, 'settlement.result', hubKey);
        if (!decoded.ok) return; // answerOf fails the test for a waited-for reply
        const b = decoded.value.body;
        const list = replies.get(b.requestId) ?? [];
        list.push({ status: b.status, code: b.code, amountMinor: b.amountMinor });
        replies.set(b.requestId, list);
      });
    }

    /** Until a verified answer comes: send, and resend the same bytes after RESEND_AFTER_MS. */
    async function ask(client: TerminalClient, bytes: Buffer, requestId: string, record: Sent): Promise<void> {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) record.resends++;
        try {
          record.answers.push(answerOf(await client.request(bytes, requestId, RESEND_AFTER_MS), hubKey, requestId));
          return;
        } catch (err) {
          if (err instanceof BadReply) throw err;
          // 90 s of resends, inside the test's timeout: a request that never gets its answer is named.
          if (attempt > 60) throw new Error(`no answer to ${requestId} after ${attempt} resends (hub stdout: ${hub?.proc.stdout().slice(-2000)}; stderr: ${hub?.proc.stderr().slice(-2000)})`);
        }
      }
    }

    /** The request's wallet authorization again, in a new request the terminal signs: a replay. */
    async function replay(client: TerminalClient, r: Sent): Promise<Answer> {
      const requestId = newRequestId();
      const bytes = r.resign(requestId);
      const again: Sent = { ...r, bytes, answers: [], resends: 0 };
      await ask(client, bytes, requestId, again);
      return again.answers[0]!;
    }

    /** Sends `next(n)`'s requests one at a time until stopped. */
    async function terminalLoop(client: TerminalClient, next: (n: number) => { requestId: string } & Omit<Sent, 'answers' | 'resends'>): Promise<void> {
      for (let n = 0; !stopping; n++) {
        const { requestId, ...req } = next(n);
        const record: Sent = { ...req, answers: [], resends: 0 };
        sent.set(requestId, record);
        await ask(client, req.bytes, requestId, record);
        // Every fifth request is delivered once more after its answer (a redelivery).
        if (n % 5 === 4) await ask(client, req.bytes, requestId, record);
      }
    }
    const nextPurchase = purchaseFactory();
    const selling = terminals.map((t, i) =>
      terminalLoop(clients[i]!, (n) => {
        const party = t.parties[n % t.parties.length]!;
        const req = nextPurchase(party);
        const resign = (requestId: string) => Buffer.from(JSON.stringify(fastSignMessage('settlement.request', { ...req.message.body, requestId }, party.terminalKey)));
        return { requestId: req.requestId, terminalId: t.terminalId, wallet: party.walletPublicKeyHex, bytes: req.bytes, resign };
      }),
    );
    // Exits alternate between the gate's own decision (offline) and the hub's.
    const exiting = gates.map((g, i) =>
      terminalLoop(gateClients[i]!, (n) => {
        const wallet = g.wallets[n % g.wallets.length]!;
        return { ...fareExit(g.terminal, wallet, n % 2 === 0), terminalId: g.terminal.id, wallet: wallet.id };
      }),
    );
    const loops = Promise.all([...selling, ...exiting]);
    loops.catch(() => undefined); // awaited below; a bad reply fails the test there
    const kills: number[] = [];
    try {
      for (let k = 0; k < KILLS; k++) {
        const delay = 500 + Math.floor(Math.random() * 1500);
        kills.push(delay);
        await sleep(delay);
        // Right after an approval left: its claim is then still in the registry's 20 ms commit
        // queue, and only the ledger's copy (the claim memo) survives the kill.
        // Bounded: a hub that answers nothing any more is killed all the same (and the resends tell).
        await Promise.race([new Promise<void>((resolve) => (onNextReply = resolve)), sleep(10_000)]);
        const running = hub.proc;
        running.child.kill('SIGKILL');
        await running.exited();
        hub = await startHubProcess(dataDir, first.port);
      }
      await sleep(1000);
    } finally {
      stopping = true;
      await loops;
    }
    // After the last restart, every request once more: under a new id its wallet authorization is
    // refused, whether its claim was committed before a kill or re-entered from the ledger after
    // it; then under its own id it gets the answer it got before the kills (a late resend). In
    // that order: the resend would claim a lost challenge again itself.
    const byTerminal = new Map<string, TerminalClient>([...terminals.map((t, i) => [t.terminalId, clients[i]!] as const), ...gates.map((g, i) => [g.terminal.id, gateClients[i]!] as const)]);
    const replays = await Promise.all(
      [...byTerminal].map(async ([terminalId, c]) => {
        const answers: Array<[string, Answer]> = [];
        for (const [requestId, r] of sent) {
          if (r.terminalId !== terminalId) continue;
          answers.push([requestId, await replay(c, r)]);
          await ask(c, r.bytes, requestId, r);
        }
        return answers;
      }),
    );
    await Promise.all([...byTerminal.values()].map((c) => c.close()));
    // A clean stop after the last restart.
    hub.proc.child.kill('SIGTERM');
    expect(await hub.proc.exited()).toBe(0);

    const context = `kills after ${kills.join(', ')} ms`;
    const records = [...sent.entries()];
    for (const [requestId, a] of replays.flat()) expect(a, `${context}: replay of ${requestId}`).toEqual({ status: 'declined', code: 'REPLAY', amountMinor: 0 });
    // The kills came while requests were in flight: some needed a resend.
    expect(records.reduce((n, [, r]) => n + r.resends, 0), context).toBeGreaterThan(0);
    expect(records.length, context).toBeGreaterThan(TERMINALS * 5);
    // Fares ran too, decided at the gate and by the hub.
    const fares = records.filter(([, r]) => r.terminalId.startsWith('gate-'));
    expect(fares.length, context).toBeGreaterThan(GATES * 2);

    const h = await createHub({ dataDir, logger: pino({ level: 'silent' }) });
    try {
      const report = await h.verifyLedger();
      expect(report.ok, `${context}: ${JSON.stringify(report)}`).toBe(true);
      const charged = new Map<string, number>();
      for (const [requestId, r] of records) {
        // One answer for all deliveries of a request, late replies included: a resend never turns
        // a decline into a charge or back.
        const firstAnswer = r.answers[0]!;
        expect(r.answers.length, `${context}: ${requestId}`).toBeGreaterThanOrEqual(2);
        for (const a of [...r.answers, ...(replies.get(requestId) ?? [])]) expect(a, `${context}: ${requestId}`).toEqual(firstAnswer);
        expect(firstAnswer.status, `${context}: ${requestId} declined ${firstAnswer.code}`).toBe('approved');
        charged.set(r.wallet, (charged.get(r.wallet) ?? 0) + firstAnswer.amountMinor);
      }
      const wallets = [...terminals.flatMap((t) => t.parties.map((p) => p.walletPublicKeyHex)), ...gates.flatMap((g) => g.wallets.map((w) => w.id))];
      const accounts = await h.engine.store.accountsById(wallets);
      for (const wallet of wallets) {
        expect(accounts.get(wallet)?.balanceMinor, `${context}: ${wallet}`).toBe(START_MINOR - (charged.get(wallet) ?? 0));
      }
      // And each approval is its own request's withdrawal in the ledger.
      for (const [requestId, r] of records) {
        const row = await ledgerDecision(h.engine, requestId);
        expect(row?.amountMinor, `${context}: ${requestId} (${engineRequestId(requestId)}) in the ledger`).toBe(r.answers[0]!.amountMinor);
      }
    } finally {
      await h.close();
    }
  }, 180_000);
});

