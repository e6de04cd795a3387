/**
 * The trader population of a scenario: behaviours drawn from the scenario's mix, heavy-tailed capital
 * (Pareto with the scenario's median and tail index; market makers x20), heterogeneous leverage and
 * habits per behaviour, staggered arrival. Each trader draws from its own PRNG streams
 * (`trader/<i>/...`), so the population and every trader's randomness are the same whatever any other
 * trader or a risk engine does.
 */
import { Rng } from '../random.js';
import type { PopulationConfig, Scenario } from '../scenario/schema.js';
import { BEHAVIOURS, type Behaviour, type BehaviourParams, Trader } from './types.js';

/** mean minutes between decisions at calm, per behaviour */
const MEAN_INTERVAL: Record<Behaviour, number> = {
  trend: 45,
  meanReversion: 40,
  martingale: 20,
  gambler: 30,
  hedged: 120,
  careful: 25,
  withdrawer: 60,
  marketMaker: 4,
  cancelHeavy: 15,
};

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

function leverageFor(b: Behaviour, r: Rng, scale: number): number {
  const ln = (median: number, s: number) => r.logNormal(median, s);
  const lev: Record<Behaviour, () => number> = {
    trend: () => ln(5, 0.6),
    meanReversion: () => ln(6, 0.6),
    martingale: () => ln(3, 0.4),
    gambler: () => r.uniform(25, 110),
    hedged: () => ln(4, 0.4),
    careful: () => ln(2.5, 0.4),
    withdrawer: () => ln(8, 0.5),
    marketMaker: () => ln(3, 0.3),
    cancelHeavy: () => ln(6, 0.6),
  };
  return clamp(lev[b]() * scale, 1, 125);
}

function paramsFor(b: Behaviour, r: Rng, comeback: number): BehaviourParams {
  const p: BehaviourParams = {
    lookback: Math.round(r.uniform(30, 240)),
    threshold: r.uniform(1, 2),
    stopLoss: Number.POSITIVE_INFINITY,
    takeProfit: Number.POSITIVE_INFINITY,
    addStep: 0.02,
    maxAdds: 0,
    callLevel: r.uniform(1.2, 2),
    withdrawProb: 0,
    panicDrawdown: r.uniform(0.4, 0.8),
    quoteBps: 5,
    pullVolRatio: 5,
    cancelShare: 0.5,
    comeback,
  };
  switch (b) {
    case 'trend':
      if (r.bernoulli(0.6)) p.stopLoss = r.uniform(0.02, 0.06);
      break;
    case 'meanReversion':
      p.lookback = Math.round(r.uniform(60, 720));
      p.threshold = r.uniform(1.5, 3);
      p.takeProfit = r.uniform(0.01, 0.03);
      p.addStep = r.uniform(0.02, 0.05);
      p.maxAdds = r.bernoulli(0.5) ? 1 + r.int(2) : 0;
      p.panicDrawdown = r.uniform(0.6, 0.95);
      break;
    case 'martingale':
      p.takeProfit = r.uniform(0.005, 0.015);
      p.addStep = r.uniform(0.015, 0.04);
      p.maxAdds = 3 + r.int(4);
      p.panicDrawdown = 2; // never panics
      break;
    case 'gambler':
      p.lookback = Math.round(r.uniform(5, 20));
      p.takeProfit = r.uniform(0.01, 0.05);
      p.callLevel = r.uniform(1.05, 1.3);
      p.panicDrawdown = r.uniform(0.7, 1);
      break;
    case 'hedged':
      p.stopLoss = r.uniform(0.08, 0.2);
      p.callLevel = r.uniform(1.5, 2.5);
      break;
    case 'careful':
      p.stopLoss = r.uniform(0.015, 0.05);
      p.takeProfit = r.uniform(0.02, 0.08);
      p.callLevel = r.uniform(2, 3.5);
      p.panicDrawdown = r.uniform(0.15, 0.35);
      break;
    case 'withdrawer':
      p.withdrawProb = r.uniform(0.2, 0.5);
      p.callLevel = r.uniform(1.05, 1.3);
      p.panicDrawdown = r.uniform(0.6, 0.95);
      break;
    case 'marketMaker':
      p.quoteBps = r.uniform(3, 15);
      p.pullVolRatio = r.uniform(3, 10);
      p.callLevel = r.uniform(2, 4);
      p.panicDrawdown = r.uniform(0.2, 0.5);
      break;
    case 'cancelHeavy':
      p.cancelShare = r.uniform(0.7, 0.97);
      p.stopLoss = r.uniform(0.02, 0.06);
      p.takeProfit = r.uniform(0.01, 0.04);
      break;
  }
  return p;
}

export function createPopulation(scenario: Scenario, accounts: number, seed: number): Trader[] {
  const pop: PopulationConfig = scenario.population;
  const mixWeights = BEHAVIOURS.map((b) => pop.mix[b]);
  const symWeights = scenario.instruments.map((i) => i.popularity);
  const xm = pop.medianCapital / 2 ** (1 / pop.capitalTailIndex);
  const traders: Trader[] = [];
  for (let i = 0; i < accounts; i++) {
    const r = Rng.stream(seed, `trader/${i}/params`);
    const behaviour = BEHAVIOURS[r.pick(mixWeights)]!;
    const symbol = r.pick(symWeights);
    let hedgeSymbol = -1;
    if (behaviour === 'hedged' && symWeights.length > 1) {
      const w = symWeights.map((x, k) => (k === symbol ? 0 : x));
      hedgeSymbol = r.pick(w);
    }
    let capital = Math.min(pop.maxCapital, r.pareto(xm, pop.capitalTailIndex));
    if (behaviour === 'marketMaker') capital = Math.min(pop.maxCapital, capital * 20);
    capital = Math.round(capital * 100) / 100;
    const reserveMedian = behaviour === 'careful' ? 1.5 : behaviour === 'gambler' ? 0.5 : 1;
    const reserve = capital * r.logNormal(reserveMedian, 0.8);
    const baseLeverage = leverageFor(behaviour, r, pop.leverageScale);
    const meanInterval = (MEAN_INTERVAL[behaviour] * r.logNormal(1, 0.4)) / pop.activityScale;
    const params = paramsFor(behaviour, r, pop.comebackProbability);
    const joinAt = r.next() * pop.joinHours * 60;
    traders.push(
      new Trader(
        i,
        `a-${i + 1}`,
        behaviour,
        Rng.stream(seed, `trader/${i}/decisions`),
        Rng.stream(seed, `trader/${i}/timing`),
        symbol,
        hedgeSymbol,
        capital,
        reserve,
        baseLeverage,
        meanInterval,
        params,
        joinAt,
      ),
    );
  }
  return traders;
}
