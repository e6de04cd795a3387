/**
 * The feature matrix as CSV (RFC 4180): a header `account,<schema names>`, one line per account, values as
 * the shortest decimal that reads back to the same float32. For people looking at features, not for
 * training (training reads the Float32Array directly).
 */
import { FEATURE_NAMES } from './schema.js';

export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvHeader(): string {
  return `account,${FEATURE_NAMES.join(',')}\n`;
}

/** Shortest decimal (6 to 9 significant digits) whose float32 is `v` (`v` is a float32 value). */
export function float32Text(v: number): string {
  if (Number.isInteger(v)) return String(v);
  for (let p = 6; p < 9; p++) {
    const t = Number(v.toPrecision(p));
    if (Math.fround(t) === v) return String(t);
  }
  return String(Number(v.toPrecision(9)));
}

/** Lines for rows [0, rows) of a row-major matrix with `cols` columns. */
export function* csvRows(accounts: readonly string[], matrix: Float32Array, cols: number): Generator<string> {
  for (let r = 0; r < accounts.length; r++) {
    let line = csvField(accounts[r]!);
    for (let c = 0; c < cols; c++) line += `,${float32Text(matrix[r * cols + c]!)}`;
    yield `${line}\n`;
  }
}
