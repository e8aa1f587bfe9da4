/** Benchmark group `protocol`: codec and signature throughput for a realistic purchase request. */
import { canonicalBytes, decodeMessage, encodeMessage, fromHex, signMessage, signNode, signNoble, signSodium, verifyNode, verifyNoble, verifySodium } from '../protocol/index.ts';
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
  // The three Ed25519 back-ends of protocol/crypto.ts, in one run: compare them as ratios.
  report('protocol.sign_sodium_ops_s', opsPerSecond(() => signSodium(bytes, key.secretKey)), 'ops/s');
  report('protocol.sign_node_ops_s', opsPerSecond(() => signNode(bytes, key.secretKey)), 'ops/s');
  report('protocol.sign_noble_ops_s', opsPerSecond(() => signNoble(bytes, key.secretKey)), 'ops/s');
  report('protocol.sign_message_ops_s', opsPerSecond(() => signMessage(request.type, request.body, key.secretKey)), 'ops/s');
  report('protocol.verify_sodium_ops_s', opsPerSecond(() => verifySodium(sig, bytes, key.publicKey)), 'ops/s');
  report('protocol.verify_node_ops_s', opsPerSecond(() => verifyNode(sig, bytes, key.publicKey)), 'ops/s');
  report('protocol.verify_noble_ops_s', opsPerSecond(() => verifyNoble(sig, bytes, key.publicKey)), 'ops/s');
}
