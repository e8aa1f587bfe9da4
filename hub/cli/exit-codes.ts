/** The operator CLI's exit codes, also those of a command run over the running hub's admin channel. */
export const EXIT_DONE = 0;
/** Refused or declined (a business outcome), or verify-ledger found a discrepancy. */
export const EXIT_REFUSED = 1;
/** Bad input: the message names the field. */
export const EXIT_BAD_INPUT = 2;
/**
 * Taken but not finished: a payout is debited and recorded, but the clearing did not take it. The
 * money is held in clearing and the hub sends it again with the same id (`payout retry`).
 */
export const EXIT_PENDING = 3;
