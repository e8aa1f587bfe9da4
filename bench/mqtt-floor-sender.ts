/**
 * The sending side of the mqtt floor (bench/mqtt-floor.ts), in its own process as the load
 * generator is: one MQTT client with TCP no-delay publishes 1 KiB QoS 1 requests open loop at a
 * fixed rate (Metronome-timed like the load generator) and times each echo from its SCHEDULED
 * send time. `node --import tsx bench/mqtt-floor-sender.ts URL RPS DURATION_MS` with an IPC
 * channel; it sends one FloorResult and exits.
 */
import { MqttClient } from 'mqtt';
import { noDelayStreamBuilder } from '../hub/mqtt/no-delay-stream.ts';
import { Metronome } from '../simulators/load/metronome.ts';
import { percentile } from './harness.ts';

export const FLOOR_REQUEST_TOPIC = 'floor/request';
export const FLOOR_REPLY_TOPIC = 'floor/reply';
export const FLOOR_REQUEST_BYTES = 1024;
export const FLOOR_REPLY_BYTES = 1536;

export interface FloorResult {
  readonly sent: number;
  readonly answered: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  /** How late the sends left (the sender's own scheduling), p99. */
  readonly sendLagP99Ms: number;
}

const GRACE_MS = 2000;

async function main(url: string, rps: number, durationMs: number): Promise<FloorResult> {
  const client = new MqttClient(noDelayStreamBuilder(url), { protocolVersion: 4, clientId: 'floor-sender', reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(FLOOR_REPLY_TOPIC, { qos: 1 });
  const dueAt = new Float64Array(Math.ceil((rps * durationMs) / 1000));
  const rtts: number[] = [];
  const lags: number[] = [];
  client.on('message', (_topic, payload) => {
    const seq = payload.readUInt32BE(0);
    if (seq < dueAt.length && dueAt[seq]! > 0) {
      rtts.push(performance.now() - dueAt[seq]!);
      dueAt[seq] = 0;
    }
  });
  const metronome = new Metronome();
  const intervalMs = 1000 / rps;
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < dueAt.length && start + sent * intervalMs <= now) {
        const request = Buffer.alloc(FLOOR_REQUEST_BYTES);
        request.writeUInt32BE(sent, 0);
        dueAt[sent] = start + sent * intervalMs;
        lags.push(now - dueAt[sent]!);
        client.publish(FLOOR_REQUEST_TOPIC, request, { qos: 1 });
        sent++;
      }
      if (sent >= dueAt.length) return resolve();
      metronome.at(start + sent * intervalMs, tick);
    };
    tick();
  });
  const graceEnd = performance.now() + GRACE_MS;
  while (rtts.length < sent && performance.now() < graceEnd) await new Promise((r) => setTimeout(r, 20));
  await metronome.close();
  await client.endAsync();
  rtts.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  return { sent, answered: rtts.length, rttP50Ms: percentile(rtts, 50), rttP99Ms: percentile(rtts, 99), sendLagP99Ms: percentile(lags, 99) };
}

if (process.send) {
  const [url, rps, durationMs] = process.argv.slice(2);
  main(url!, Number(rps), Number(durationMs)).then(
    (result) => process.send!(result, () => process.exit(0)),
    (err: unknown) => {
      console.error('mqtt floor sender:', err);
      process.exit(1);
    },
  );
}
