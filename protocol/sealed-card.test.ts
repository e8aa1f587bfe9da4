import { describe, expect, it } from 'vitest';
import { generateSealingKeyPair, openCard, sealCard } from './sealed-card.ts';

describe('sealed card', () => {
  const authorizer = generateSealingKeyPair();
  const card = { pan: '4111111111111111', expiry: '12/29' };
  it('only the authorizer opens it, only for the same request', () => {
    const sealed = sealCard(card, authorizer.publicKey, 'ab'.repeat(16));
    expect(sealed.ciphertext).not.toContain('4111');
    expect(openCard(sealed, authorizer, 'ab'.repeat(16))).toEqual(card);
    expect(openCard(sealed, authorizer, 'cd'.repeat(16))).toBeNull();
    expect(openCard(sealed, generateSealingKeyPair(), 'ab'.repeat(16))).toBeNull();
    const flipped = { ...sealed, ciphertext: (sealed.ciphertext[0] === '0' ? '1' : '0') + sealed.ciphertext.slice(1) };
    expect(openCard(flipped, authorizer, 'ab'.repeat(16))).toBeNull();
  });
});
