/**
 * Load generator: a separate process (so its CPU is not the hub's event loop) that connects a
 * fleet of simulated terminals over MQTT and sends signed purchase requests, open loop (a fixed
 * rate, latency measured from the SCHEDULED send time so a stall is not hidden — no coordinated
 * omission) or closed loop (a fixed number in flight). Requests are signed ahead of each phase.
 * Run by bench/mqtt.ts: `node --import tsx simulators/load/load-generator.ts FLEET.json` with an
 * IPC channel; it answers `phase` commands with `result` messages.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalBytes, fromHex, topics } from '../../protocol/index.ts';
import { makePurchaseRequest, nodeSigningKey, type PurchaseParty } from './purchase-request.ts';
import { connectTerminal, type TerminalClient } from './terminal-client.ts';
import { Metronome } from './metronome.ts';
import type { FleetFile, FromGenerator, Phase, PhaseResult, RequestTiming, ToGenerator } from './load-plan.ts';

const SIGNATURE_SAMPLE_EVERY = 100;
const GRACE_MS = 3000;

function send(message: FromGenerator): void {
  process.send?.(message);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const REQUEST_ID = Buffer.from('"requestId":"');
const APPROVED = Buffer.from('"status":"approved"');
const RESULT_TYPE = Buffer.from('"type":"settlement.result"');

/**
 * What the generator needs of a reply without parsing ~1.5 kB of JSON per reply (its CPU is on
 * the same two cores as the hub's): the first request id, whether it is an approved result. A
 * purchase result has one of each (its statement has no entries); the sampled replies are parsed
 * in full, signature-checked and compared with this (a disagreement counts as a bad reply).
 */
function scanReply(payload: Buffer): { requestId: string; approved: boolean } | undefined {
  const at = payload.indexOf(REQUEST_ID);
  if (at < 0) return undefined;
  const start = at + REQUEST_ID.length;
  const end = payload.indexOf(0x22, start);
  if (end < 0 || end - start > 64) return undefined;
  return { requestId: payload.toString('latin1', start, end), approved: payload.includes(RESULT_TYPE) && payload.includes(APPROVED) };
}

interface Slot {
  readonly client: TerminalClient;
  readonly parties: PurchaseParty[];
  next: number;
}

interface Prepared {
  readonly slot: number;
  readonly requestId: string;
  readonly bytes: Buffer;
}

async function main(): Promise<void> {
  const fleet = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as FleetFile;
  const hubKey = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), fromHex(fleet.hubKeyHex)]), format: 'der', type: 'spki' });
  const started = performance.now();
  const slots: Slot[] = [];
  // Open loop: each request leaves when it is due (sub-ms), without a spinning wait.
  const metronome = new Metronome();
  // Connect in chunks: a connect storm of hundreds of CONNECTs at once is not what we measure.
  for (let i = 0; i < fleet.terminals.length; i += 50) {
    const chunk = fleet.terminals.slice(i, i + 50);
    const clients = await Promise.all(
      chunk.map((t) =>
        connectTerminal({
          url: fleet.url,
          terminalId: t.terminalId,
          ...(t.password !== undefined ? { password: t.password } : { secretKey: fromHex(t.secretKeyHex) }),
        }),
      ),
    );
    clients.forEach((client) => {
      slots.push({ client, parties: [], next: 0 });
    });
  }
  const terminalKeys = fleet.terminals.map((t) => nodeSigningKey(fromHex(t.secretKeyHex)));
  fleet.wallets.forEach((w) => {
    const t = fleet.terminals[w.terminal]!;
    slots[w.terminal]!.parties.push({
      terminalId: t.terminalId,
      merchantId: t.merchantId,
      terminalKey: terminalKeys[w.terminal]!,
      walletPublicKeyHex: w.license.body.wallet,
      walletKey: nodeSigningKey(fromHex(w.secretKeyHex)),
      license: w.license,
    });
  });
  // Per-wallet counters that only grow (across phases and runs: they start at the clock), and
  // requests are sent in the order they were signed, so the hub's counter window accepts them all.
  const counters = new Map<PurchaseParty, number>();
  const prepare = (slot: number): Prepared => {
    const s = slots[slot]!;
    const party = s.parties[s.next++ % s.parties.length]!;
    const counter = (counters.get(party) ?? Date.now()) + 1;
    counters.set(party, counter);
    const req = makePurchaseRequest(party, { lines: [{ sku: fleet.sku, qty: 1, unitMinor: fleet.unitMinor }], currency: fleet.currency, counter, nowMs: Date.now() });
    return { slot, requestId: req.requestId, bytes: req.bytes };
  };

  // Per-phase state, reset by runPhase.
  let sentAt = new Map<string, number>();
  // Tracing only: when each request actually left, and every answered request's timing.
  let tracing = false;
  let leftAt = new Map<string, number>();
  let timings: RequestTiming[] = [];
  let onAnswer: (slot: number) => void = () => {};
  let rtts: number[] = [];
  let approved = 0;
  let replies = 0;
  let declined: Record<string, number> = {};
  let checked = 0;
  let bad = 0;
  slots.forEach((s, index) =>
    s.client.onReply((payload) => {
      const now = performance.now();
      const seen = scanReply(payload);
      const t0 = seen === undefined ? undefined : sentAt.get(seen.requestId);
      if (seen === undefined || t0 === undefined) return;
      sentAt.delete(seen.requestId);
      if (tracing) timings.push([seen.requestId, performance.timeOrigin + t0, performance.timeOrigin + (leftAt.get(seen.requestId) ?? t0), performance.timeOrigin + now]);
      replies++;
      rtts.push(now - t0);
      if (seen.approved) approved++;
      if (!seen.approved || replies % SIGNATURE_SAMPLE_EVERY === 1) {
        let msg: { type?: string; body?: { requestId?: string; status?: string; code?: string }; sig?: string } = {};
        try {
          msg = JSON.parse(payload.toString('utf8')) as typeof msg;
        } catch {
          // counted below as a bad reply
        }
        const approvedResult = msg.type === 'settlement.result' && msg.body?.status === 'approved';
        if (!approvedResult) declined[msg.body?.code ?? msg.type ?? '?'] = (declined[msg.body?.code ?? msg.type ?? '?'] ?? 0) + 1;
        checked++;
        let ok = approvedResult === seen.approved && msg.body?.requestId === seen.requestId;
        try {
          ok &&= nodeVerify(null, canonicalBytes(msg.type!, msg.body), hubKey, Buffer.from(msg.sig ?? '', 'hex'));
        } catch {
          ok = false;
        }
        if (!ok) bad++;
      }
      onAnswer(index);
    }),
  );
  send({ event: 'ready', connectMs: Math.round(performance.now() - started) });

  const publish = (p: Prepared, scheduledAt: number) => {
    sentAt.set(p.requestId, scheduledAt);
    if (tracing) leftAt.set(p.requestId, performance.now());
    slots[p.slot]!.client.client.publish(topics.request(slots[p.slot]!.client.client.options.clientId!), p.bytes, { qos: 1 });
  };

  const runPhase = async (phase: Phase): Promise<PhaseResult> => {
    sentAt = new Map();
    tracing = phase.trace === true;
    leftAt = new Map();
    timings = [];
    rtts = [];
    approved = 0;
    replies = 0;
    declined = {};
    checked = 0;
    bad = 0;
    onAnswer = () => {};
    let sent = 0;
    // Sign ahead: enough for the phase at the expected rate (closed loop: a generous guess).
    const expected = phase.mode === 'open' ? Math.ceil((phase.rps * phase.durationMs) / 1000) + 10 : Math.ceil((4000 * phase.durationMs) / 1000);
    const pool: Prepared[] = [];
    for (let i = 0; i < expected; i++) pool.push(prepare(i % slots.length));
    const perSlot: Prepared[][] = slots.map(() => []);
    for (const p of pool) perSlot[p.slot]!.push(p);
    const taken = slots.map(() => 0);
    const take = (slot: number): Prepared => perSlot[slot]![taken[slot]!++] ?? prepare(slot);
    // The pool just signed fills this process's young generation: collect now, or its first
    // scavenges in the phase copy and promote all of it (tens of ms) while requests wait to be sent.
    (globalThis as { gc?: () => void }).gc?.();
    let rr = 0;
    const lags: number[] = [];

    const cpuStart = process.cpuUsage();
    const start = performance.now();
    const end = start + phase.durationMs;
    if (phase.mode === 'open') {
      const intervalMs = 1000 / phase.rps;
      await new Promise<void>((resolve) => {
        const tick = () => {
          const now = performance.now();
          while (sent < expected - 10 && start + sent * intervalMs <= now) {
            lags.push(now - (start + sent * intervalMs));
            publish(take(rr++ % slots.length), start + sent * intervalMs);
            sent++;
          }
          if (now >= end) return resolve();
          metronome.at(start + sent * intervalMs, tick);
        };
        tick();
      });
    } else {
      const window = Math.min(phase.window, slots.length);
      let stopping = false;
      // Every terminal takes part, each with at most one request outstanding: an answered terminal
      // goes to the back of the idle queue and the longest-idle one sends next (window < fleet).
      const idle: number[] = Array.from({ length: slots.length }, (_, i) => i);
      let idleHead = 0;
      const fireNext = () => {
        if (stopping) return;
        const slot = idle[idleHead++]!;
        if (idleHead > 4096) {
          idle.splice(0, idleHead);
          idleHead = 0;
        }
        publish(take(slot), performance.now());
        sent++;
      };
      onAnswer = (slot) => {
        idle.push(slot);
        fireNext();
      };
      for (let i = 0; i < window; i++) fireNext();
      await new Promise((r) => setTimeout(r, phase.durationMs));
      stopping = true;
    }
    const elapsedMs = performance.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    const settledBeforeGrace = approved;
    const graceEnd = performance.now() + GRACE_MS;
    while (sentAt.size > 0 && performance.now() < graceEnd) await new Promise((r) => setTimeout(r, 20));
    const sorted = Float64Array.from(rtts).sort();
    const lagSorted = Float64Array.from(lags).sort();
    return {
      name: phase.name,
      sent,
      replies,
      approved,
      declined,
      timeouts: sentAt.size,
      elapsedMs: Math.round(elapsedMs),
      settledPerS: Math.round((settledBeforeGrace * 1000) / elapsedMs),
      rttP50Ms: percentile(sorted, 50),
      rttP90Ms: percentile(sorted, 90),
      rttP99Ms: percentile(sorted, 99),
      rttMaxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      signatureChecked: checked,
      signatureBad: bad,
      generatorCpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100),
      sendLagMsP50: lagSorted.length ? percentile(lagSorted, 50) : 0,
      sendLagMsP99: lagSorted.length ? percentile(lagSorted, 99) : 0,
      ...(tracing ? { timings } : {}),
    };
  };

  process.on('message', (raw: ToGenerator) => {
    if (raw.cmd === 'exit') {
      void Promise.all([...slots.map((s) => s.client.close().catch(() => {})), metronome.close()]).finally(() => process.exit(0));
      return;
    }
    runPhase(raw.phase).then(
      (result) => send({ event: 'result', result }),
      (err: unknown) => send({ event: 'error', message: String(err) }),
    );
  });
}

main().catch((err: unknown) => {
  send({ event: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  process.exit(1);
});
