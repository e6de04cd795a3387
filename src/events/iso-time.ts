/**
 * ISO-8601 times as given on command lines and in scenario files, read the same on every machine: a date alone
 * is midnight UTC (as `Date.parse` reads it), and a date-time must say its offset (`Z` or `+hh:mm`), because
 * `Date.parse` reads one without as the machine's local time (`2020-03-12T09:00` would be 09:00 UTC in one
 * place and 13:00 UTC in New York).
 */

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** Epoch ms of an ISO-8601 date, or date-time with an offset; NaN for anything else. */
export function parseIsoUtcMs(text: string): number {
  if (!DATE_ONLY.test(text) && !DATE_TIME_WITH_OFFSET.test(text)) return Number.NaN;
  return Date.parse(text);
}

/** Why `text` is not a time `parseIsoUtcMs` reads (for error messages). */
export function isoTimeHint(text: string): string {
  return /T\d{2}:\d{2}/.test(text) && !/(Z|[+-]\d{2}:?\d{2})$/i.test(text)
    ? `"${text}" has no offset: add Z for UTC (or +hh:mm)`
    : `"${text}" is not an ISO-8601 time (e.g. 2020-03-12T09:00Z)`;
}

/** Epoch ms from integer epoch ms or an ISO-8601 time (see above); throws `make(message)` otherwise. */
export function parseTimeArg(text: string, make: (message: string) => Error): number {
  if (/^\d+$/.test(text)) return Number(text);
  const ms = parseIsoUtcMs(text);
  if (Number.isNaN(ms)) throw make(`${isoTimeHint(text)}, or epoch ms`);
  return ms;
}
