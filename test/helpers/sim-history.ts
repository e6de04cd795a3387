/**
 * Small simulated histories for tests of the consumers of histories (training, scoring, backtest).
 */

import { simulate } from '../../src/sim/simulate.js';
import { JsonlFileSink } from '../../src/sim/sink.js';

export async function writeSimHistory(
  scenario: string,
  accounts: number,
  seed: number,
  path: string,
): Promise<string> {
  const sink = new JsonlFileSink(path);
  await simulate(scenario, { accounts, seed, sink });
  await sink.close();
  return path;
}
