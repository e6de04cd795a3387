/**
 * The simulator's public API: `simulate(scenario, {accounts, seed, riskEngine?, sink?})` runs a scenario
 * and returns its summary; scenario loading, sinks and the hook types for backtests.
 */
export { buildMarket, type MarketPaths, type SymbolMarket } from './market/market-paths.js';
export { Rng } from './random.js';
export {
  type LoadedScenario,
  loadScenario,
  namedScenarios,
  parseScenario,
  SCENARIOS_DIR,
  ScenarioError,
} from './scenario/load.js';
export { type Scenario, ScenarioSchema } from './scenario/schema.js';
export { type SimulateOptions, SimulationInputError, simulate } from './simulate.js';
export { JsonlFileSink, MemorySink } from './sink.js';
export { BEHAVIOURS, type Behaviour } from './traders/types.js';
export {
  DEFAULT_FEES,
  type EarlyReduction,
  type EventSink,
  type FeeSchedule,
  type MarketSnapshot,
  PREEMPT_ORDER_PREFIX,
  type RiskEngine,
  type RiskEngineContext,
  type SimulationSummary,
} from './venue/types.js';
