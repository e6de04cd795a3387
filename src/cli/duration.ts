/**
 * Command-line durations: `90s`, `5m`, `1h`, `2d`, or a bare number of milliseconds.
 */
import { InvalidArgumentError } from 'commander';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a duration (e.g. 5m, 60m, 1h, 300000)`);
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] as number);
  if (!(ms > 0)) throw new InvalidArgumentError(`"${text}" must be longer than zero`);
  return ms;
}

export function parseIntArg(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${text}" is not an integer`);
  return n;
}
