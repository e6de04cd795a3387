/**
 * Process-wide counts of the score pools' worker replacements, for the service's metrics (kept apart from
 * score-pool.ts so reading them loads no TF.js).
 */
let restarts = 0;

/** Replacement score workers started in this process since it started (monotonic). */
export function scoreWorkerRestarts(): number {
  return restarts;
}

export function countScoreWorkerRestart(): void {
  restarts++;
}
