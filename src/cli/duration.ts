/**
 * Command-line durations: `90s`, `5m`, `1h`, `2d`, or a bare number of milliseconds. Every duration the CLI
 * takes is a step or a window over a history (`--every`, `--horizon`, `--period`): a whole number of ms and at
 * least a second (`--every 1.5` was 1.5 ms, a snapshot of every account 40,000 times a minute).
 */
import { InvalidArgumentError } from 'commander';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MIN_DURATION_MS = 1000;

export function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a duration (e.g. 5m, 60m, 1h, 300000)`);
  const ms = Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] as number);
  if (!(ms > 0)) throw new InvalidArgumentError(`"${text}" must be longer than zero`);
  if (!Number.isInteger(ms)) throw new InvalidArgumentError(`"${text}" is not a whole number of ms`);
  if (ms < MIN_DURATION_MS)
    throw new InvalidArgumentError(`"${text}" is shorter than a second (a bare number is ms: 300000 is 5m)`);
  return ms;
}

export function parseIntArg(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${text}" is not an integer`);
  return n;
}
