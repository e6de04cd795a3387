/**
 * Shared printing for benchmarks: a figure, its baseline measured in the same run, and the ratio.
 */
export function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function timeItAsync(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(2);
}

/**
 * Print `label: value unit` beside `baselineLabel: baseline unit` and value/baseline. For rates (higher is
 * better) pass `higherIsBetter = true`.
 */
export function printRatio(
  label: string,
  value: number,
  baselineLabel: string,
  baseline: number,
  unit: string,
  target?: string,
): void {
  const ratio = value / baseline;
  const t = target ? `  [target: ${target}]` : '';
  console.log(`${label.padEnd(44)} ${fmt(value).padStart(10)} ${unit}`);
  console.log(
    `  baseline ${baselineLabel.padEnd(34)} ${fmt(baseline).padStart(10)} ${unit}   ratio ${ratio.toFixed(2)}x${t}`,
  );
}
