/** Benchmark group `protocol`: codec and signature throughput for a realistic purchase request. */
import { canonicalBytes, decodeMessage, encodeMessage, fromHex, sign, signMessage, signNoble, verifyNode, verifyNoble } from '../protocol/index.ts';
import { buildSampleMessages, VECTOR_KEYS } from '../protocol/vectors/messages.ts';
import { opsPerSecond, type Report } from './harness.ts';

export async function run(report: Report): Promise<void> {
  const request = buildSampleMessages().find((m) => m.type === 'settlement.request' && m.body.op.type === 'purchase');
  if (!request || request.type !== 'settlement.request') throw new Error('bench/protocol: no purchase request in the vectors');
  const wire = encodeMessage(request);
  const bytes = canonicalBytes(request.type, request.body);
  const sig = fromHex(request.sig);
  const key = VECTOR_KEYS.terminal;
  report('protocol.request_bytes', wire.length, 'B');
  report('protocol.encode_ops_s', opsPerSecond(() => canonicalBytes(request.type, request.body)), 'ops/s');
  report('protocol.decode_validate_ops_s', opsPerSecond(() => decodeMessage(wire, 'settlement.request')), 'ops/s');
  report('protocol.sign_ops_s', opsPerSecond(() => sign(bytes, key.secretKey)), 'ops/s');
  report('protocol.sign_noble_ops_s', opsPerSecond(() => signNoble(bytes, key.secretKey)), 'ops/s');
  report('protocol.sign_message_ops_s', opsPerSecond(() => signMessage(request.type, request.body, key.secretKey)), 'ops/s');
  report('protocol.verify_ops_s', opsPerSecond(() => verifyNode(sig, bytes, key.publicKey)), 'ops/s');
  report('protocol.verify_noble_ops_s', opsPerSecond(() => verifyNoble(sig, bytes, key.publicKey)), 'ops/s');
}
