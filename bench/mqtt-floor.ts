/**
 * The machine's floor for the mqtt latency bars, measured in the same run as them: a bare QoS 1
 * echo through a plain aedes broker on loopback, TCP no-delay everywhere, the sender in its own
 * process (bench/mqtt-floor-sender.ts) timed as the load generator is, the echoing client in this
 * process. No authentication, no ACL hooks, no signatures, no ledger: whatever the hub adds on top
 * of this is the hub's; what this takes, the machine (its scheduler, wake-ups, loopback TCP) takes
 * from every design.
 *   mqtt.floor.rtt_p50_ms_at_100rps / p99, mqtt.floor.rtt_p50_ms_at_1000rps / p99
 *   mqtt.floor.cpu_canonical_encode_ops_s, mqtt.floor.cpu_verify_sodium_ops_s (cpuSpeed)
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { MqttClient } from 'mqtt';
import { noDelayStreamBuilder } from '../hub/mqtt/no-delay-stream.ts';
import { canonicalBytes, fromHex, verifySodium } from '../protocol/index.ts';
import { buildSampleMessages, VECTOR_KEYS } from '../protocol/vectors/messages.ts';
import { FLOOR_REPLY_BYTES, FLOOR_REPLY_TOPIC, FLOOR_REQUEST_TOPIC, type FloorResult } from './mqtt-floor-sender.ts';
import { opsPerSecond, round, type Report } from './harness.ts';

const SENDER = fileURLToPath(new URL('./mqtt-floor-sender.ts', import.meta.url));

function sendFor(url: string, rps: number, durationMs: number): Promise<FloorResult> {
  return new Promise((resolve, reject) => {
    const child = fork(SENDER, [url, String(rps), String(durationMs)], { execArgv: ['--import', 'tsx'] });
    let result: FloorResult | undefined;
    child.once('message', (m: FloorResult) => (result = m));
    child.once('error', reject);
    child.once('close', (code) => (result ? resolve(result) : reject(new Error(`mqtt floor sender exited (${code}) without a result`))));
  });
}

/**
 * The host's CPU speed, for reading the throughput figures of the same run: the same VM has run
 * at about half speed on some days. Two operations of the hub's request path, one core.
 */
export function cpuSpeed(report: Report, prefix: string): void {
  const request = buildSampleMessages().find((m) => m.type === 'settlement.request' && m.body.op.type === 'purchase');
  if (!request || request.type !== 'settlement.request') throw new Error('bench/mqtt-floor: no request in the vectors');
  const bytes = canonicalBytes(request.type, request.body);
  const sig = fromHex(request.sig);
  report(`${prefix}_canonical_encode_ops_s`, opsPerSecond(() => canonicalBytes(request.type, request.body)), 'ops/s');
  report(`${prefix}_verify_sodium_ops_s`, opsPerSecond(() => verifySodium(sig, bytes, VECTOR_KEYS.terminal.publicKey)), 'ops/s');
}

export async function runFloor(report: Report, phaseMs: number): Promise<void> {
  const broker = await Aedes.createBroker();
  const server = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const echo = new MqttClient(noDelayStreamBuilder(url), { protocolVersion: 4, clientId: 'floor-echo', reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      echo.once('connect', () => resolve());
      echo.once('error', reject);
    });
    await echo.subscribeAsync(FLOOR_REQUEST_TOPIC, { qos: 1 });
    echo.on('message', (_topic, request) => {
      const reply = Buffer.alloc(FLOOR_REPLY_BYTES);
      request.copy(reply, 0, 0, 4);
      echo.publish(FLOOR_REPLY_TOPIC, reply, { qos: 1 });
    });
    const warmUp = await sendFor(url, 1000, Math.min(2000, phaseMs));
    if (warmUp.answered < warmUp.sent) console.error(`#   floor warm-up: ${warmUp.sent - warmUp.answered} of ${warmUp.sent} echoes missing`);
    for (const rps of [100, 1000]) {
      const r = await sendFor(url, rps, phaseMs);
      console.error(`#   floor, bare QoS 1 echo at ${rps} rps: sent ${r.sent}, answered ${r.answered}, rtt p50 ${r.rttP50Ms.toFixed(2)} p99 ${r.rttP99Ms.toFixed(2)} ms (of which send lag p99 ${r.sendLagP99Ms.toFixed(2)} ms)`);
      // A diagnostic: with echoes missing its percentiles would flatter the machine, so none is printed.
      if (r.answered < r.sent) continue;
      report(`mqtt.floor.rtt_p50_ms_at_${rps}rps`, round(r.rttP50Ms), 'ms');
      report(`mqtt.floor.rtt_p99_ms_at_${rps}rps`, round(r.rttP99Ms), 'ms');
    }
  } finally {
    await echo.endAsync();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
