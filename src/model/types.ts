/**
 * The scorer contract every consumer (service, score-history, backtest) codes against. The implementation
 * (TF.js model + normalisation + calibration, batched over a worker pool) lives beside it in src/model/.
 */
export interface ModelInfo {
  /** model name and version, e.g. `default@2026-11-24T12:00:00Z` */
  version: string;
  /** hash of the feature schema the model was trained on */
  schemaHash: string;
  /** prediction horizon, ms */
  horizonMs: number;
  /** TF.js backend in use: `tensorflow`, `wasm` or `cpu` */
  backend: string;
  featureNames: readonly string[];
  /**
   * the network's files matched the sha256 digests metadata.json records (false: a model written before
   * digests were recorded, or hand-built, loaded unverified)
   */
  filesVerified: boolean;
}

export interface FeatureContribution {
  feature: string;
  /** change in calibrated pd when this feature is set to its neutral value (positive = pushed pd up) */
  deltaPd: number;
}

export interface PdScorer {
  readonly info: ModelInfo;
  /** Calibrated default probabilities for `rows` feature rows laid out row-major in `matrix`. */
  score(matrix: Float32Array, rows: number): Promise<Float32Array>;
  /** The features that pushed one row's pd up most (largest first). */
  explain(row: Float32Array, top?: number): Promise<FeatureContribution[]>;
  /**
   * Score a row of zeros through every path `score` can take (in-process, and the worker pool where there is
   * one): whether the model can score at all, for a health probe. Throws what a failing path throws.
   */
  probe?(): Promise<void>;
  close(): Promise<void>;
}
