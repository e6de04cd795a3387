/**
 * The risk engine a backtest plugs into the simulator: the live path of the service in simulated time.
 * Every simulated minute it snapshots the feature pipeline (fed the same events the venue emitted), scores
 * every account holding a position, runs the margin core's `decide` with that pd, the market's volatility
 * and visible depth, and hands the REDUCE orders to the venue, with the accounts the decision restricts to
 * reduce-only until the next look (`Decision.reduceOnly`) and the leverage caps on accounts reduced early
 * (`Decision.leverageCap`). LIQUIDATE stays the venue's own business.
 */
import { FeaturePipeline } from '../features/pipeline.js';
import { type Decision, decide, type PolicyConfig, type PolicyMemory } from '../margin/index.js';
import { leverageCapHeld, reduceOnlyHeld } from '../margin/policy.js';
import type { PdScorer } from '../model/types.js';
import type {
  EarlyReduction,
  LeverageCap,
  RiskActions,
  RiskEngine,
  RiskEngineContext,
} from '../sim/venue/types.js';

export type PdSource =
  | { kind: 'model'; scorer: PdScorer }
  /**
   * the non-ML rule: pd := 1 when equity / MM < threshold; once armed it stays armed while equity / MM <
   * exitThreshold (>= threshold; default threshold: disarmed the moment the ratio recovers)
   */
  | { kind: 'margin-ratio'; threshold: number; exitThreshold?: number }
  /** a fixed pd for every account (tests: pd 0 must reproduce liquidation-only) */
  | { kind: 'constant'; pd: number };

export interface EngineObservation {
  ts: number; // ms
  accounts: string[];
  pd: Float32Array;
}

export interface PreemptEngine {
  pipeline: FeaturePipeline;
  engine: RiskEngine;
  /** reductions decided so far (orders handed to the venue) */
  decisions: number;
  /** accounts restricted to reduce-only at least once */
  restricted: Set<string>;
}

export function createRiskEngine(
  source: PdSource,
  policy: PolicyConfig,
  observe?: (o: EngineObservation) => void,
  /** every decision, with the signal (pd) fed to it */
  onDecision?: (ts: number, account: string, signal: number, decision: Decision) => void,
): PreemptEngine {
  const pipeline = new FeaturePipeline();
  const memory = new Map<string, PolicyMemory>();
  // margin-ratio rule with an exit level: the look (ts) at which each account was last armed; it stays
  // armed only from the previous look (an account that went flat in between starts again)
  const armedAt = new Map<string, number>();
  let prevLookTs = Number.NaN;
  const ratioExit = source.kind === 'margin-ratio' ? (source.exitThreshold ?? source.threshold) : 0;
  const state: PreemptEngine = { pipeline, decisions: 0, restricted: new Set(), engine: async () => [] };
  // accounts not decided on at this look (flat) whose restriction or leverage cap still holds
  const held = (ts: number, looked: ReadonlySet<string>, reduceOnly: string[], caps: LeverageCap[]): void => {
    for (const [account, mem] of memory) {
      if (looked.has(account)) continue;
      if (reduceOnlyHeld(mem, ts, policy)) reduceOnly.push(account);
      const cap = leverageCapHeld(mem, ts, policy);
      if (cap !== null) caps.push({ account, maxLeverage: cap });
    }
  };
  state.engine = async (ctx: RiskEngineContext): Promise<RiskActions> => {
    // only the model reads features; the other signals need just the accounts (the same rows, in order)
    let snap: { rows: number; accounts: string[]; matrix?: Float32Array };
    if (source.kind === 'model') snap = pipeline.snapshot(ctx.ts, { onlyWithPosition: true });
    else {
      const accounts = pipeline.accountsWithPosition(ctx.ts);
      snap = { rows: accounts.length, accounts };
    }
    if (snap.rows === 0) {
      prevLookTs = ctx.ts;
      const reduceOnly: string[] = [];
      const caps: LeverageCap[] = [];
      held(ctx.ts, new Set(), reduceOnly, caps);
      return { reductions: [], reduceOnly, leverageCaps: caps };
    }
    let pd: Float32Array;
    if (source.kind === 'model') pd = await source.scorer.score(snap.matrix as Float32Array, snap.rows);
    else pd = new Float32Array(snap.rows);
    const sigma1h: Record<string, number> = {};
    const depth: Record<string, { bidDepth: number; askDepth: number }> = {};
    for (const m of ctx.market) {
      sigma1h[m.symbol] = m.sigma1h;
      depth[m.symbol] = { bidDepth: m.bidDepth, askDepth: m.askDepth };
    }
    const out: EarlyReduction[] = [];
    const reduceOnly: string[] = [];
    const caps: LeverageCap[] = [];
    const decided = new Set<string>();
    for (let r = 0; r < snap.rows; r++) {
      const account = snap.accounts[r] as string;
      // the policy needs no liquidation prices: skip them (about a fifth of an evaluation)
      const margin = ctx.book.snapshot(account, { prices: false });
      if (!margin || margin.positions.length === 0) continue;
      if (source.kind === 'constant') pd[r] = source.pd;
      else if (source.kind === 'margin-ratio') {
        const wasArmed = armedAt.get(account) === prevLookTs;
        const armed = margin.marginRatio < source.threshold || (wasArmed && margin.marginRatio < ratioExit);
        if (armed) armedAt.set(account, ctx.ts);
        pd[r] = armed ? 1 : 0;
      }
      const { decision, memory: next } = decide(
        {
          margin,
          instruments: ctx.book,
          pd: pd[r] as number,
          now: ctx.ts,
          memory: memory.get(account),
          sigma1h,
          depth,
        },
        policy,
      );
      memory.set(account, next);
      decided.add(account);
      onDecision?.(ctx.ts, account, pd[r] as number, decision);
      if (decision.reduceOnly) {
        reduceOnly.push(account);
        state.restricted.add(account);
      }
      if (decision.leverageCap !== null) caps.push({ account, maxLeverage: decision.leverageCap });
      if (decision.action !== 'REDUCE') continue;
      state.decisions++;
      for (const o of decision.orders) out.push({ account, symbol: o.symbol, qty: o.qty });
    }
    prevLookTs = ctx.ts;
    observe?.({ ts: ctx.ts, accounts: snap.accounts, pd });
    held(ctx.ts, decided, reduceOnly, caps);
    return { reductions: out, reduceOnly, leverageCaps: caps };
  };
  return state;
}
