/**
 * The model report: `report.md` with SVG charts beside it (ROC and PR curves, reliability diagram,
 * baseline comparison, permutation feature importance, training curve).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelMetadata } from '../src/model/artifacts.js';
import { curves, reliability } from '../src/model/metrics.js';
import { barChart, lineChart } from '../src/report/svg-chart.js';
import type { EpochInfo } from './fit.js';
import type { SplitMatrix } from './splits.js';

export interface ReportInputs {
  test: SplitMatrix;
  pd: Record<string, Float32Array>;
  importance: { feature: string; aucDrop: number }[];
  history: EpochInfo[];
}

const fmt = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined ? 'n/a' : v.toFixed(digits);

/**
 * A Markdown table of held-out metrics, one row per scorer; `unseen` adds the ROC-AUC over traders never
 * trained on (a training run's test split records it).
 */
export function metricsRowsTable(rows: [string, Record<string, number | null>][], unseen = true): string {
  const cols = [
    'ROC-AUC',
    'PR-AUC',
    'Brier',
    'ECE',
    'ECE equal-mass',
    'recall @1%',
    'recall @5%',
    'median lead (min)',
    ...(unseen ? ['ROC-AUC unseen traders'] : []),
  ];
  const head = `| | ${cols.join(' | ')} |\n|---|${cols.map(() => '---').join('|')}|`;
  const body = rows
    .map(([name, m]) => {
      const cells = [
        fmt(m.rocAuc),
        fmt(m.prAuc),
        fmt(m.brier, 4),
        fmt(m.ece, 4),
        fmt(m.eceEqualMass, 4),
        fmt(m.recallAt1pct),
        fmt(m.recallAt5pct),
        fmt(m.medianLeadMin, 0),
        ...(unseen ? [fmt(m.rocAucUnseen)] : []),
      ];
      return `| ${name} | ${cells.join(' | ')} |`;
    })
    .join('\n');
  return `${head}\n${body}`;
}

export function metricsTable(meta: ModelMetadata): string {
  return metricsRowsTable([
    ['model (MLP)', meta.metrics.model],
    ...Object.entries(meta.metrics.baselines).map(
      ([k, v]) => [`baseline: ${k}`, v] as [string, Record<string, number | null>],
    ),
  ]);
}

/** Where the second stage and the calibration were fitted, as the report says it (from the metadata's `training`). */
export function stageFittedOn(meta: Pick<ModelMetadata, 'training'>): string {
  const t = meta.training as { stageCrossFit?: { folds?: unknown[] }; calibrateOn?: string[] };
  if (t.stageCrossFit)
    return `the stage and the calibration fitted out of day (\`--stage-cross-fit\`): on every training history as scored by a network trained on the other ${Math.max(0, (t.stageCrossFit.folds?.length ?? 0) - 1)}`;
  if (t.calibrateOn && t.calibrateOn.length > 0)
    return `the stage and the calibration fitted on other histories, never trained on (\`--calibrate-on\`: ${t.calibrateOn.length})`;
  return 'the stage fitted on the calibration split (traders never trained on)';
}

export async function writeReport(dir: string, meta: ModelMetadata, inputs: ReportInputs): Promise<void> {
  const { test, pd } = inputs;
  const roc: { name: string; points: { x: number; y: number }[] }[] = [];
  const pr: { name: string; points: { x: number; y: number }[] }[] = [];
  for (const [name, p] of Object.entries(pd)) {
    const c = curves(p, test.y);
    roc.push({ name, points: c.roc });
    pr.push({ name, points: c.pr });
  }
  await writeFile(
    join(dir, 'roc.svg'),
    lineChart(
      [
        ...roc,
        {
          name: 'chance',
          points: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
          dashed: true,
        },
      ],
      {
        title: 'ROC curve (held-out test split)',
        xLabel: 'false-positive rate',
        yLabel: 'true-positive rate',
        xRange: [0, 1],
        yRange: [0, 1],
      },
    ),
  );
  await writeFile(
    join(dir, 'pr.svg'),
    lineChart(pr, {
      title: 'Precision-recall (held-out)',
      xLabel: 'recall',
      yLabel: 'precision',
      xRange: [0, 1],
      yRange: [0, 1],
    }),
  );
  const rel = reliability(pd.model ?? new Float32Array(0), test.y, 10).filter((b) => b.count > 0);
  await writeFile(
    join(dir, 'reliability.svg'),
    lineChart(
      [
        { name: 'model (calibrated)', points: rel.map((b) => ({ x: b.meanPredicted, y: b.observedRate })) },
        {
          name: 'perfect calibration',
          points: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
          dashed: true,
        },
      ],
      {
        title: 'Reliability diagram (held-out)',
        xLabel: 'predicted pd',
        yLabel: 'observed default rate',
        xRange: [0, 1],
        yRange: [0, 1],
      },
    ),
  );
  const comparisons = [
    { label: 'model ROC-AUC', value: meta.metrics.model.rocAuc ?? 0 },
    ...Object.entries(meta.metrics.baselines).map(([k, v]) => ({
      label: `${k} ROC-AUC`,
      value: v.rocAuc ?? 0,
    })),
    { label: 'model PR-AUC', value: meta.metrics.model.prAuc ?? 0 },
    ...Object.entries(meta.metrics.baselines).map(([k, v]) => ({
      label: `${k} PR-AUC`,
      value: v.prAuc ?? 0,
    })),
  ];
  await writeFile(
    join(dir, 'baselines.svg'),
    barChart(comparisons, { title: 'Model vs baselines (held-out)', xLabel: 'score' }),
  );
  await writeFile(
    join(dir, 'importance.svg'),
    barChart(
      inputs.importance.slice(0, 15).map((i) => ({ label: i.feature, value: i.aucDrop })),
      { title: 'Permutation importance (ROC-AUC drop)', xLabel: 'AUC lost when the feature is shuffled' },
    ),
  );
  await writeFile(
    join(dir, 'training.svg'),
    lineChart(
      [
        { name: 'train loss (weighted)', points: inputs.history.map((h) => ({ x: h.epoch, y: h.loss })) },
        { name: 'validation log-loss', points: inputs.history.map((h) => ({ x: h.epoch, y: h.valLoss })) },
      ],
      { title: 'Training curve', xLabel: 'epoch', yLabel: 'loss' },
    ),
  );
  const t = meta.training as {
    bestEpoch?: number;
    epochsRun?: number;
    positives?: Record<string, number>;
    negativeSample?: number;
  };
  const st = meta.stack;
  const stage = st
    ? `\n**Two-stage score**: pd = calibration(sigmoid(${st.bias.toFixed(3)} + ${st.wLogit.toFixed(3)} · logit(network) ${st.features
        .map(
          (f, k) =>
            `${(st.wFeatures[k] ?? 0) >= 0 ? '+' : '−'} ${Math.abs(st.wFeatures[k] ?? 0).toFixed(3)} · ln(${st.offset} + ${f})`,
        )
        .join(' ')})), ${stageFittedOn(meta)}.\n`
    : '';
  const sampling =
    t.negativeSample !== undefined && t.negativeSample < 1
      ? ` The network trained on every default and ${Math.round(t.negativeSample * 100)}% of the other training rows (seeded).`
      : '';
  const md = `# Model report: ${meta.name}

Trained ${meta.createdAt} on ${meta.versions.backend ?? '?'} (TF.js ${meta.versions.tfjs ?? '?'}), seed ${meta.seed}.
Horizon ${meta.horizonMs / 60000} min, snapshots every ${meta.everyMs / 60000} min, feature schema v${meta.featureSchema.version}
(\`${meta.featureSchema.hash.slice(0, 16)}…\`), MLP ${meta.architecture.hidden.join('-')}, calibration: ${meta.calibration.method}.
Early stopping kept epoch ${t.bestEpoch ?? '?'} of ${t.epochsRun ?? '?'}.${sampling}
${stage}
**Data**: ${meta.data.files.join(', ')} (fingerprint \`${meta.data.fingerprint.slice(0, 16)}…\`).
Rows: ${Object.entries(meta.data.rows)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}; defaults: ${Object.entries(t.positives ?? {})
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}.

**Splits**: ${meta.metrics.split}.

## Held-out metrics

${metricsTable(meta)}

Lead time: minutes from the first alert (threshold at a 5% alert rate) of the uninterrupted alert run to the liquidation.

![ROC](roc.svg) ![PR](pr.svg)

![Reliability](reliability.svg) ![Baselines](baselines.svg)

## Feature importance

![Importance](importance.svg)

| feature | ROC-AUC drop |
|---|---|
${inputs.importance
  .slice(0, 15)
  .map((i) => `| ${i.feature} | ${i.aucDrop.toFixed(4)} |`)
  .join('\n')}

## Training

![Training curve](training.svg)
`;
  await writeFile(join(dir, 'report.md'), md);
}
