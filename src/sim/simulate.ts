/**
 * The simulation loop: builds the market from the scenario and seed, creates the population, and walks
 * the scenario minute by minute: market block (t+0), the venue's liquidation pass (t+100 ms), the
 * optional risk engine's early reductions (t+200 ms), resting-order fills (t+300 ms), the traders due in
 * the minute in time order (t+1 s .. t+59 s; in a fast minute interleaved with marks every 10 s, each
 * followed by a liquidation pass), the venue's prints (t+59.5 s). Deterministic for a seed;
 * the risk engine changes only the accounts it touches (every trader has its own random streams).
 */
import { MarginBook } from '../margin/index.js';
import { buildMarket, type MarketPaths, SUBSTEPS } from './market/market-paths.js';
import { type LoadedScenario, loadScenario } from './scenario/load.js';
import { decide, decisionInterval } from './traders/decide.js';
import { createPopulation } from './traders/population.js';
import type { Trader } from './traders/types.js';
import { TraderViewImpl } from './traders/view.js';
import { applyRestrictions, executeIntents, executeReductions, fillResting } from './venue/execution.js';
import { liquidationPass } from './venue/liquidation-pass.js';
import {
  DEFAULT_FEES,
  type EarlyReduction,
  type EventSink,
  type FeeSchedule,
  type RiskActions,
  type RiskEngine,
  type SimulationSummary,
} from './venue/types.js';
import { PHASE, SUB_STEP_MS, TRADER_WINDOW_MS, Venue } from './venue/venue.js';

export class SimulationInputError extends Error {
  readonly code = 'SIM_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'SimulationInputError';
  }
}

export interface SimulateOptions {
  /** number of simulated accounts (>= 1) */
  accounts: number;
  /** PRNG seed (integer) */
  seed: number;
  /** called every simulated minute after the venue's liquidations; may return early reductions */
  riskEngine?: RiskEngine;
  /** where events go (default: discarded) */
  sink?: EventSink;
  fees?: FeeSchedule;
  /** called after each simulated minute */
  onMinute?: (minute: number, minutes: number) => void;
  /** prebuilt market (e.g. to time path generation separately); must come from the same scenario and seed */
  market?: MarketPaths;
}

const DISCARD: EventSink = { write: () => undefined };

function isRiskActions(a: readonly EarlyReduction[] | RiskActions): a is RiskActions {
  return !Array.isArray(a);
}

export async function simulate(
  scenarioOrName: LoadedScenario | string,
  opts: SimulateOptions,
): Promise<SimulationSummary> {
  if (!Number.isInteger(opts.accounts) || opts.accounts < 1)
    throw new SimulationInputError(`accounts must be an integer >= 1 (got ${opts.accounts})`);
  if (!Number.isInteger(opts.seed))
    throw new SimulationInputError(`seed must be an integer (got ${opts.seed})`);
  const loaded = typeof scenarioOrName === 'string' ? loadScenario(scenarioOrName) : scenarioOrName;
  const { scenario } = loaded;
  const market = opts.market ?? buildMarket(loaded, opts.seed, opts.accounts);
  const fundStart = scenario.insuranceFundPerAccount * opts.accounts;
  const book = new MarginBook({ insuranceFund: fundStart });
  const traders = createPopulation(scenario, opts.accounts, opts.seed);
  const out = opts.sink ?? DISCARD;
  // the latest ts written (epoch ms): a trader due inside a fast minute's liquidation pass acts after it, so
  // the history stays ordered by ts as the spec requires (its events used to be stamped up to 100 ms before
  // the pass's, and a reader with no reordering dropped them as late)
  let lastTs = Number.NEGATIVE_INFINITY;
  const sink: EventSink = {
    write: (ev) => {
      if (ev.ts > lastTs) lastTs = ev.ts;
      out.write(ev);
    },
    ...(out.flush ? { flush: () => (out.flush as () => Promise<void>).call(out) } : {}),
  };
  const venue = new Venue(market, book, traders, sink, opts.fees ?? DEFAULT_FEES, opts.seed);
  const view = new TraderViewImpl(venue);
  const buckets = new Map<number, Trader[]>();
  const enqueue = (t: Trader): void => {
    const m = Math.floor(t.nextAt);
    if (t.gone || m >= market.minutes) return;
    let b = buckets.get(m);
    if (!b) {
      b = [];
      buckets.set(m, b);
    }
    b.push(t);
  };
  for (const t of traders) enqueue(t);

  venue.declareInstruments();
  for (let m = 0; m < market.minutes; m++) {
    venue.marketBlock(m);
    liquidationPass(venue, m * SUBSTEPS);
    if (opts.riskEngine) {
      const ts = venue.ts(m, PHASE.riskEngine);
      const actions = await opts.riskEngine({ ts, minute: m, book, market: venue.marketSnapshot() });
      if (isRiskActions(actions)) {
        if (actions.reduceOnly) applyRestrictions(venue, actions.reduceOnly, ts);
        if (actions.leverageCaps) venue.capLeverage(actions.leverageCaps);
        executeReductions(venue, actions.reductions, ts);
      } else executeReductions(venue, actions, ts);
    }
    fillResting(venue, m, venue.ts(m, PHASE.restingFills));
    const due = buckets.get(m) ?? [];
    buckets.delete(m);
    due.sort((a, b) => a.nextAt - b.nextAt || a.index - b.index);
    let sub = 1;
    const subSteps = (until: number): void => {
      // fast minutes: marks every 10 s, each followed by a liquidation pass
      for (; sub < SUBSTEPS && venue.ts(m, sub * SUB_STEP_MS) <= until; sub++)
        if (venue.subMark(m, sub)) liquidationPass(venue, m * SUBSTEPS + sub);
    };
    for (const t of due) {
      let ts = venue.ts(m, PHASE.traders + Math.floor((t.nextAt - m) * TRADER_WINDOW_MS));
      if ((ts - venue.ts(m, 0)) % SUB_STEP_MS === 0) ts += 1; // never share a timestamp with a mark
      subSteps(ts);
      if (ts < lastTs) ts = lastTs + 1;
      view.bind(t, m);
      const intents = decide(t, view);
      executeIntents(venue, t, intents, ts);
      if (t.gone) continue;
      view.bind(t, m);
      t.nextAt = Math.max(m + 1, t.nextAt + t.timing.exponential(decisionInterval(t, view)));
      enqueue(t);
    }
    subSteps(Number.POSITIVE_INFINITY);
    venue.endMinute(m);
    opts.onMinute?.(m, market.minutes);
    if (sink.flush) await sink.flush();
  }
  return venue.stats.summary(
    {
      scenario: scenario.name,
      seed: opts.seed,
      accounts: opts.accounts,
      minutes: market.minutes,
      funding: market.fundingSources,
    },
    traders,
    fundStart,
    book.venueFunds(),
  );
}
