/**
 * Field checks the margin core repeats on every event it applies. Events from files and HTTP were
 * already validated by the zod schemas; events built in-process (the simulator, the waterfall) were
 * not, so the core re-checks the numbers it uses before touching any state.
 */
import type { CanonicalEvent, Tier } from '../events/schema.js';
import { MarginRuleError } from './errors.js';

function finite(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new MarginRuleError('NON_FINITE', `${field} must be a finite number (got ${String(value)})`, field);
  return value;
}

function positive(value: unknown, field: string): void {
  if (!(finite(value, field) > 0)) throw new MarginRuleError('INVALID_FIELD', `${field} must be > 0`, field);
}

function nonNegative(value: unknown, field: string): void {
  if (!(finite(value, field) >= 0))
    throw new MarginRuleError('INVALID_FIELD', `${field} must be >= 0`, field);
}

function checkTiers(tiers: readonly Tier[]): void {
  if (tiers.length === 0) throw new MarginRuleError('INVALID_FIELD', 'tiers must be non-empty', 'tiers');
  tiers.forEach((t, i) => {
    const f = `tiers.${i}`;
    if (t.maxNotional !== null) positive(t.maxNotional, `${f}.maxNotional`);
    finite(t.imr, `${f}.imr`);
    finite(t.mmr, `${f}.mmr`);
    if (!(t.mmr > 0 && t.mmr < t.imr && t.imr <= 1))
      throw new MarginRuleError('INVALID_FIELD', `${f}: need 0 < mmr < imr <= 1`, f);
    const prev = tiers[i - 1];
    if (
      prev &&
      (prev.maxNotional === null || (t.maxNotional !== null && !(t.maxNotional > prev.maxNotional)))
    )
      throw new MarginRuleError('INVALID_FIELD', `${f}: tiers must be sorted, null last`, `${f}.maxNotional`);
  });
}

/** Throws MarginRuleError when a number the core uses is missing, non-finite or out of range. */
export function checkEventFields(ev: CanonicalEvent): void {
  finite(ev.ts, 'ts');
  switch (ev.type) {
    case 'instrument':
      positive(ev.contractSize, 'contractSize');
      nonNegative(ev.liquidationFeeRate, 'liquidationFeeRate');
      checkTiers(ev.tiers);
      return;
    case 'mark':
      positive(ev.price, 'price');
      return;
    case 'funding':
      finite(ev.rate, 'rate');
      return;
    case 'deposit':
    case 'withdrawal':
      positive(ev.amount, 'amount');
      return;
    case 'fill':
      positive(ev.qty, 'qty');
      positive(ev.price, 'price');
      finite(ev.fee, 'fee');
      return;
    case 'liquidation':
      positive(ev.qty, 'qty');
      positive(ev.price, 'price');
      nonNegative(ev.fee, 'fee');
      return;
    case 'adl':
      positive(ev.qty, 'qty');
      positive(ev.price, 'price');
      return;
    case 'bankruptcy':
      positive(ev.deficit, 'deficit');
      return;
    default:
      return;
  }
}
