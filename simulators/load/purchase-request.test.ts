import { describe, expect, it } from 'vitest';
import { generateKeyPair, signMessage, toHex, verifyMessage } from '../../protocol/index.ts';
import { fastSignMessage, nodeSigningKey } from './purchase-request.ts';

describe('fastSignMessage (node:crypto)', () => {
  it('produces exactly the bytes of protocol signMessage (noble): Ed25519 is deterministic', () => {
    for (let i = 0; i < 20; i++) {
      const keys = generateKeyPair();
      const body = { requestId: toHex(keys.publicKey).slice(0, 32), terminalId: 'pos-1', outcome: 'dispensed' as const, time: 1_700_000_000_000 + i };
      const fast = fastSignMessage('completion.receipt', body, nodeSigningKey(keys.secretKey));
      expect(fast).toEqual(signMessage('completion.receipt', body, keys.secretKey));
      expect(verifyMessage(fast, keys.publicKey)).toBe(true);
    }
  });
});
