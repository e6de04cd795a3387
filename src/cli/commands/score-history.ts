/**
 * `preempt score-history`: replay a history through the feature pipeline and the shipped scorer, and write
 * `ts,account,pd,marginRatio,action` for every account with a position at every step.
 */
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { emptyStats, readEventsFile } from '../../events/reader.js';
import { FeaturePipeline } from '../../features/pipeline.js';
import { F, FEATURE_COUNT } from '../../features/schema.js';
import { decide, type PolicyMemory } from '../../margin/index.js';
import { loadScorer } from '../../model/scorer.js';
import { writeAtomically } from '../atomic-file.js';
import { parseDurationMs } from '../duration.js';

export interface ScoreHistoryOptions {
  events: string;
  model: string;
  every: number;
  out: string;
}

function csvNumber(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(6))) : '';
}

export async function scoreHistory(opts: ScoreHistoryOptions): Promise<{ rows: number; snapshots: number }> {
  const scorer = await loadScorer(opts.model);
  try {
    return await writeAtomically(opts.out, (tmp) => scoreInto(tmp, opts, scorer));
  } finally {
    await scorer.close();
  }
}

async function scoreInto(
  path: string,
  opts: ScoreHistoryOptions,
  scorer: Awaited<ReturnType<typeof loadScorer>>,
): Promise<{ rows: number; snapshots: number }> {
  // readEventsFile refuses duplicate ids: the pipeline need not remember them a second time
  const pipeline = new FeaturePipeline({ idsCheckedUpstream: true });
  const memory = new Map<string, PolicyMemory>();
  const out = createWriteStream(path);
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r()));
  await write('ts,account,pd,marginRatio,action\n');
  let nextSnap = Number.NaN;
  let rows = 0;
  let snapshots = 0;
  const snapshotAt = async (ts: number) => {
    const snap = pipeline.snapshot(ts, { onlyWithPosition: true });
    snapshots++;
    if (snap.rows === 0) return;
    const pd = await scorer.score(snap.matrix, snap.rows);
    let text = '';
    for (let r = 0; r < snap.rows; r++) {
      const account = snap.accounts[r] as string;
      const margin = pipeline.book.snapshot(account);
      if (!margin) continue;
      const sigmaH = snap.matrix[r * FEATURE_COUNT + F.sigma_h] as number;
      const sigma1h = Object.fromEntries(margin.positions.map((p) => [p.symbol, sigmaH]));
      const { decision, memory: next } = decide({
        margin,
        instruments: pipeline.book,
        pd: pd[r] as number,
        now: ts,
        memory: memory.get(account),
        sigma1h,
      });
      memory.set(account, next);
      text += `${ts},${account},${csvNumber(pd[r] as number)},${csvNumber(margin.marginRatio)},${decision.action}\n`;
      rows++;
    }
    await write(text);
  };
  try {
    for await (const { event } of readEventsFile(opts.events, emptyStats())) {
      if (Number.isNaN(nextSnap)) nextSnap = Math.ceil(event.ts / opts.every) * opts.every;
      while (event.ts > nextSnap) {
        await snapshotAt(nextSnap);
        nextSnap += opts.every;
      }
      pipeline.apply(event);
    }
    pipeline.flush();
  } finally {
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
  return { rows, snapshots };
}

export function register(program: Command): void {
  program
    .command('score-history')
    .description(
      'score every account with a position at every step of a history: ts,account,pd,marginRatio,action',
    )
    .requiredOption('--events <file>', 'history (.jsonl / .jsonl.gz)')
    .option('--model <dir>', 'model directory', 'models/default')
    .option('--every <duration>', 'step', parseDurationMs, 300_000)
    .requiredOption('--out <file>', 'output CSV')
    .action(async (opts: ScoreHistoryOptions) => {
      const { rows, snapshots } = await scoreHistory(opts);
      process.stderr.write(`${rows} rows over ${snapshots} steps written to ${opts.out}\n`);
    });
}
