/**
 * The margin core's one error class. `code` says which rule an event broke; an event that throws
 * leaves the state exactly as it was.
 */
export type MarginRuleCode =
  | 'UNDECLARED_INSTRUMENT'
  | 'NO_MARK'
  | 'NON_FINITE'
  | 'INVALID_FIELD'
  | 'UNKNOWN_ACCOUNT'
  | 'NOT_LIQUIDATABLE'
  | 'BAD_INPUT';

export class MarginRuleError extends Error {
  constructor(
    readonly code: MarginRuleCode,
    message: string,
    /** the offending field, when there is one */
    readonly field?: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'MarginRuleError';
  }
}
