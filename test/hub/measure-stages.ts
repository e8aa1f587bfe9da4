/**
 * CPU µs per settled purchase, stage by stage, each stage run alone in a tight loop on the main
 * thread (process CPU time, so a neighbour's load inflates it less than wall-clock profiles):
 * decode (JSON + schema), canonical bytes of the three signed parts, Ed25519 verify ×2 (terminal,
 * wallet authorization; the license is cached), hub signing of statement + result to wire bytes,
 * registry claim + result write with its commit. The ledger and MQTT are measured elsewhere
 * (bench engine, bench mqtt's transport-only line).
 * Usage: npx tsx test/hub/measure-stages.ts [iterations=3000]
 */
import { createHash } from 'node:crypto';
import { decodeMessage, fromHex, generateKeyPair, toHex, verify } from '../../protocol/index.ts';
import { CanonicalMemo } from '../../hub/service/canonical-memo.ts';
import { signResultInline } from '../../hub/verify/result-signing.ts';
import { SNACKS, enroll, openHubFixture, purchase, register } from './kit.ts';

const [iterations = 3000] = process.argv.slice(2).map(Number);
const fx = await openHubFixture({ clock: Date.now });
try {
  const vend = await enroll(fx.hub, 'vend-1', 'vending', 'snacks');
  fx.hub.importCatalog(SNACKS);
  const wallets = await Promise.all(Array.from({ length: 50 }, () => register(fx.hub)));
  const payloads = Array.from({ length: iterations }, (_, i) => purchase(vend, wallets[i % wallets.length]!, [{ sku: 'cola', qty: 1, unitMinor: 250 }], Date.now()).bytes);
  const decoded = payloads.map((p) => {
    const d = decodeMessage(p, 'settlement.request');
    if (!d.ok) throw new Error(d.detail);
    return d.value;
  });
  const cpuUs = (fn: (i: number) => void): number => {
    for (let i = 0; i < Math.min(200, iterations); i++) fn(i); // warm-up
    const c0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) fn(i);
    const c = process.cpuUsage(c0);
    return Math.round(((c.user + c.system) / iterations) * 10) / 10;
  };
  const reqBytes: Uint8Array[] = [];
  const authBytes: Uint8Array[] = [];
  const stages: Record<string, number> = {};
  stages['decode (JSON.parse + zod)'] = cpuUs((i) => void decodeMessage(payloads[i]!, 'settlement.request'));
  stages['canonical bytes: request, authorization, license, lines (memo)'] = cpuUs((i) => {
    const memo = new CanonicalMemo();
    const req = decoded[i]!;
    reqBytes[i] = memo.bytes(req.type, req.body);
    const op = req.body.op as Extract<typeof req.body.op, { type: 'purchase' }>;
    authBytes[i] = memo.bytes(op.authorization.type, op.authorization.body);
    memo.json(op.license.body);
    createHash('sha256').update(memo.json(op.lines)).digest('hex');
  });
  const termKey = vend.keyPair.publicKey;
  stages['verify ×2 (protocol verify, strict)'] = cpuUs((i) => {
    const req = decoded[i]!;
    const op = req.body.op as Extract<typeof req.body.op, { type: 'purchase' }>;
    verify(fromHex(req.sig), reqBytes[i]!, termKey);
    verify(fromHex(op.authorization.sig), authBytes[i]!, fromHex(op.authorization.body.wallet));
  });
  const hubKeys = generateKeyPair();
  const hubKeyHex = toHex(hubKeys.publicKey);
  const wires: Uint8Array[] = [];
  stages['sign statement + result, encode (inline)'] = cpuUs((i) => {
    const req = decoded[i]!;
    wires[i] = signResultInline(hubKeys.secretKey, {
      result: { requestId: req.body.requestId, terminalId: req.body.terminalId, status: 'approved', withdrawal: 'complete', amountMinor: 250, currency: 'EUR', time: Date.now(), hubKey: hubKeyHex },
      statement: { wallet: wallets[0]!.id, balanceMinor: 1000 - i, currency: 'EUR', asOf: Date.now(), entries: [], hubKey: hubKeyHex },
    });
  });
  const registry = fx.hub.registry;
  const flushes: Promise<void>[] = [];
  stages['registry claim + result (queued; commit below)'] = cpuUs((i) => {
    const req = decoded[i]!;
    const op = req.body.op as Extract<typeof req.body.op, { type: 'purchase' }>;
    registry.claimFreshness({ challenge: op.authorization.body.challenge, wallet: op.authorization.body.wallet, requestId: req.body.requestId, counter: op.authorization.body.counter, nowMs: Date.now() });
    registry.putResult({
      requestId: req.body.requestId, terminalId: 'vend-1', hash: 'ab'.repeat(32), op: 'purchase', wallet: op.authorization.body.wallet, engineId: null,
      status: 'approved', code: null, amountMinor: 250, currency: 'EUR', holdUntilMs: null, result: wires[i]!, timeMs: Date.now(),
    });
    if (i % 200 === 199) flushes.push(registry.flush());
  });
  const c0 = process.cpuUsage();
  await Promise.all(flushes);
  await registry.flush();
  await new Promise((r) => setImmediate(r));
  const c = process.cpuUsage(c0);
  stages['registry commit (batches of 200, amortized)'] = Math.round(((c.user + c.system) / iterations) * 10) / 10;
  const total = Object.values(stages).reduce((a, b) => a + b, 0);
  for (const [k, v] of Object.entries(stages)) console.log(`${String(v).padStart(7)} µs  ${k}`);
  console.log(`${String(Math.round(total)).padStart(7)} µs  total of these stages (CPU, main thread)`);
} finally {
  await fx.cleanup();
}
