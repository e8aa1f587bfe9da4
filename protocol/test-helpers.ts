// Shared by tests only (fast-check is a dev dependency).
import fc from 'fast-check';

/** JSON values as signed data may hold them: safe integers, strings (any code units), nesting. */
export const safeJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme-composite', maxLength: 4 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('value'), { maxKeys: 8 }),
  ),
})).value;
