/**
 * The action policy: one decision per account from its margin state and (optionally) a default
 * probability. LIQUIDATE is pure rules (equity < MM) and ignores pd and memory; REDUCE is the early
 * exposure reduction when pd has crossed the reduce tier (with hysteresis, a cooldown and per-interval
 * and depth caps); WATCH and HEALTHY otherwise. Pure: `now` and the memory are arguments, and the new
 * memory is returned.
 */
import { planLiquidation } from './liquidation-sizing.js';
import {
  DEFAULT_POLICY_CONFIG,
  initialMemory,
  type PolicyAction,
  type PolicyConfig,
  type PolicyMemory,
} from './policy-config.js';
import type { DecideInput, Decision, PolicyResult, Reason } from './policy-types.js';
import { sizeReduction } from './reduce-sizing.js';
import { holdingsOf, ordersTo } from './what-if.js';

/** A usable pd, or null (rules only). */
export function usablePd(pd: number | null | undefined): number | null {
  return typeof pd === 'number' && Number.isFinite(pd) && pd >= 0 && pd <= 1 ? pd : null;
}

/** Whether the reduce tier may arm at this margin ratio (equity / MM): `reduceGateMarginRatio`, 0 = always. */
export function reduceGateOpen(marginRatio: number, c: PolicyConfig): boolean {
  return c.reduceGateMarginRatio === 0 || marginRatio < c.reduceGateMarginRatio;
}

/**
 * The armed pd tier, with hysteresis: a tier is left only below its threshold minus pdHysteresis. The reduce
 * tier arms only while the margin-ratio gate is open (`reduceGateOpen`); an armed one stays armed on pd alone,
 * or also while equity / MM is below `reduceTierHoldRatio` (`reduceTierHeldByRatio`), and one armed less than
 * `reduceTierHoldMs` ago (`sinceArmedMs`: since its last armed look) arms again below that ratio, whatever the pd.
 */
export function nextPdLevel(
  prev: 0 | 1 | 2,
  pd: number,
  c: PolicyConfig,
  marginRatio = Number.POSITIVE_INFINITY,
  sinceArmedMs = Number.POSITIVE_INFINITY,
): 0 | 1 | 2 {
  const reduce = pd >= c.pdReduce && (prev === 2 || reduceGateOpen(marginRatio, c));
  const raw: 0 | 1 | 2 = reduce ? 2 : pd >= c.pdWatch ? 1 : 0;
  if (raw < 2 && prev < 2 && sinceArmedMs < c.reduceTierHoldMs && reduceTierHeldByRatio(pd, marginRatio, c))
    return 2;
  if (raw >= prev) return raw;
  if (prev === 2 && (pd >= c.pdReduce - c.pdHysteresis || reduceTierHeldByRatio(pd, marginRatio, c)))
    return 2;
  if (pd >= c.pdWatch - c.pdHysteresis) return 1;
  return raw;
}

/**
 * Whether the margin ratio alone holds (or, within `reduceTierHoldMs`, re-arms) the reduce tier:
 * `reduceTierHoldRatio` is set, equity / MM is below it, and the pd would not arm the tier by itself.
 */
export function reduceTierHeldByRatio(pd: number, marginRatio: number, c: PolicyConfig): boolean {
  return c.reduceTierHoldRatio > 0 && marginRatio < c.reduceTierHoldRatio && pd < c.pdReduce;
}

export function decide(input: DecideInput, config: PolicyConfig = DEFAULT_POLICY_CONFIG): PolicyResult {
  const { margin: m, now } = input;
  const prev = input.memory ?? initialMemory(now);
  const mem = copyMemory(prev);
  const pd = usablePd(input.pd);
  const reasons: Reason[] = [];
  const holdings = holdingsOf(m, input.instruments);
  let action: PolicyAction;
  let qtys = holdings.map((h) => h.qty);
  let equityAfter = m.equity;
  let mmAfter = m.mm;

  if (m.equity < m.mm) {
    action = 'LIQUIDATE';
    const plan = planLiquidation(m.equity, holdings, config);
    qtys = plan.qtys;
    equityAfter = plan.equityAfter;
    mmAfter = plan.mmAfter;
    reasons.push({
      rule: 'equity-below-mm',
      text: plan.full
        ? 'equity is below maintenance margin: close every position'
        : `equity is below maintenance margin: close in ${plan.steps} step(s) to restore MM x ${1 + config.liquidationBuffer}`,
      values: {
        equity: m.equity,
        mm: m.mm,
        marginRatio: m.marginRatio,
        steps: plan.steps,
        full: plan.full,
        estimatedFees: plan.fees,
      },
    });
  } else {
    if (pd !== null)
      mem.pdLevel = nextPdLevel(
        prev.pdLevel,
        pd,
        config,
        m.marginRatio,
        typeof prev.flaggedAt === 'number' ? now - prev.flaggedAt : Number.POSITIVE_INFINITY,
      );
    if (m.marginRatio < config.marginRatioWatch) mem.marginWatch = true;
    else if (m.marginRatio > config.marginRatioWatchExit) mem.marginWatch = false;
    action = 'HEALTHY';
    if (pd !== null && mem.pdLevel === 2 && holdings.length > 0) {
      // kept armed by the ratio below the pd's hysteresis band: sized as at pdFull (the pd that armed it is
      // gone, the exposure is not)
      const held =
        pd < config.pdReduce - config.pdHysteresis && reduceTierHeldByRatio(pd, m.marginRatio, config);
      const r = reduce(input, pd, mem, holdings, config, held ? Math.max(pd, config.pdFull) : pd);
      reasons.unshift(...r.reasons);
      if (held)
        reasons.push({
          rule: 'reduce-tier-held',
          text: `pd ${pd.toFixed(4)} is below the reduce tier but margin ratio ${fmt(m.marginRatio)} is below ${config.reduceTierHoldRatio}: the tier stays armed, sized as at pdFull`,
          values: {
            pd,
            marginRatio: m.marginRatio,
            reduceTierHoldRatio: config.reduceTierHoldRatio,
            pdFull: config.pdFull,
          },
        });
      if (r.qtys) {
        action = 'REDUCE';
        qtys = r.qtys;
        equityAfter = r.equityAfter;
        mmAfter = r.mmAfter;
      } else action = 'WATCH';
    }
    if (action === 'HEALTHY' && pd !== null && mem.pdLevel >= 1) {
      action = 'WATCH';
      reasons.unshift({
        rule: mem.pdLevel === 2 ? 'pd-reduce-tier' : 'pd-watch-tier',
        text:
          mem.pdLevel === 1 && pd >= config.pdReduce
            ? `pd ${pd.toFixed(4)} reaches the reduce tier but margin ratio ${fmt(m.marginRatio)} is not below the gate ${config.reduceGateMarginRatio}: watch`
            : `pd ${pd.toFixed(4)} is in the ${mem.pdLevel === 2 ? 'reduce' : 'watch'} tier (hysteresis ${config.pdHysteresis})`,
        values: {
          pd,
          pdWatch: config.pdWatch,
          pdReduce: config.pdReduce,
          marginRatio: m.marginRatio,
          reduceGateMarginRatio: config.reduceGateMarginRatio,
        },
      });
    }
    if (mem.marginWatch) {
      const deciding = action === 'HEALTHY';
      if (deciding) action = 'WATCH';
      reasons[deciding ? 'unshift' : 'push']({
        rule: 'margin-ratio-watch',
        text: `margin ratio ${fmt(m.marginRatio)} is below the watch level ${config.marginRatioWatch} (exit above ${config.marginRatioWatchExit})`,
        values: {
          equity: m.equity,
          mm: m.mm,
          marginRatio: m.marginRatio,
          watch: config.marginRatioWatch,
          exit: config.marginRatioWatchExit,
        },
      });
    }
    if (action === 'HEALTHY')
      reasons.unshift({
        rule: 'healthy',
        text: 'above maintenance margin, no risk tier armed',
        values: { equity: m.equity, mm: m.mm, marginRatio: m.marginRatio, pd },
      });
    if (pd === null)
      reasons.push({
        rule: 'rules-only',
        text: 'no usable pd: venue rules only',
        values: { pd: input.pd ?? null },
      });
  }
  if (action !== prev.action || input.memory === undefined) mem.since = now;
  mem.action = action;
  // the restriction follows the armed reduce tier (kept as it was during a LIQUIDATE, which ignores pd)
  if (pd !== null && mem.pdLevel === 2) mem.flaggedAt = now;
  const reduceOnly =
    config.reduceOnlyWhileFlagged &&
    pd !== null &&
    mem.pdLevel === 2 &&
    (config.reduceOnlyMarginRatio === 0 || m.marginRatio < config.reduceOnlyMarginRatio);
  if (reduceOnly)
    reasons.push({
      rule: 'reduce-only',
      text: 'the reduce tier is armed: orders may only reduce exposure until it is left',
      values: { pdReduce: config.pdReduce, pdHysteresis: config.pdHysteresis },
    });
  const leverageCap = leverageCapHeld(mem, now, config);
  if (leverageCap !== null)
    reasons.push({
      rule: 'leverage-cap',
      text: `reduced early ${now - (mem.lastReduceAt as number)} ms ago: orders may not take notional above ${leverageCap} x equity until ${config.leverageCapHoldMs} ms after the last reduction`,
      values: {
        leverageCap,
        lastReduceAt: mem.lastReduceAt,
        holdMs: config.leverageCapHoldMs,
        leverage: m.equity > 0 ? m.notional / m.equity : null,
      },
    });
  const decision: Decision = {
    account: m.account,
    action,
    rule: reasons[0]!.rule,
    reasons,
    pd,
    rulesOnly: pd === null,
    now,
    equity: m.equity,
    mm: m.mm,
    im: m.im,
    marginRatio: m.marginRatio,
    orders: ordersTo(holdings, qtys),
    equityAfter,
    mmAfter,
    reduceOnly,
    leverageCap,
  };
  return { decision, memory: mem };
}

/**
 * Whether an account the policy does not decide on now (it went flat, so it is not scored) is still
 * restricted to reduce-only: its last decision had the reduce tier armed, less than `reduceOnlyHoldMs` ago
 * (the signal cannot clear without a score, so the restriction lapses after that time instead).
 */
export function reduceOnlyHeld(memory: PolicyMemory | undefined, now: number, config: PolicyConfig): boolean {
  return (
    config.reduceOnlyWhileFlagged &&
    memory !== undefined &&
    memory.pdLevel === 2 &&
    typeof memory.flaggedAt === 'number' &&
    now - memory.flaggedAt < config.reduceOnlyHoldMs
  );
}

/**
 * The leverage cap (x, account notional / equity) on an account reduced early, or null: while less than
 * `leverageCapHoldMs` has passed since its last REDUCE (`memory` as `decide` returned it), config
 * `leverageCapAfterReduce`, or with `leverageCapFollowsReduce` the leverage that REDUCE left (the lower of the two
 * when both are set). It holds whether or not the account is scored now (a flat account may reopen).
 */
export function leverageCapHeld(
  memory: PolicyMemory | undefined,
  now: number,
  config: PolicyConfig,
): number | null {
  if (memory === undefined || memory.lastReduceAt === null) return null;
  if (!(now - memory.lastReduceAt < config.leverageCapHoldMs)) return null;
  const fixed = config.leverageCapAfterReduce > 0 ? config.leverageCapAfterReduce : Number.POSITIVE_INFINITY;
  const left =
    config.leverageCapFollowsReduce && typeof memory.reducedLeverage === 'number'
      ? memory.reducedLeverage
      : Number.POSITIVE_INFINITY;
  const cap = Math.min(fixed, left);
  return Number.isFinite(cap) ? cap : null;
}

function reduce(
  input: DecideInput,
  pd: number,
  mem: PolicyMemory,
  holdings: ReturnType<typeof holdingsOf>,
  c: PolicyConfig,
  /** the pd the reduction is sized with (`pd` itself, or pdFull while the ratio holds the tier) */
  sizingPd = pd,
): { reasons: Reason[]; qtys?: number[]; equityAfter: number; mmAfter: number } {
  const { margin: m, now } = input;
  const none = { equityAfter: m.equity, mmAfter: m.mm };
  if (mem.lastReduceAt !== null && now - mem.lastReduceAt < c.cooldownMs) {
    return {
      ...none,
      reasons: [
        {
          rule: 'cooldown',
          text: `pd ${pd.toFixed(4)} is in the reduce tier but the last reduction was ${now - mem.lastReduceAt} ms ago (cooldown ${c.cooldownMs} ms)`,
          values: { pd, lastReduceAt: mem.lastReduceAt, cooldownMs: c.cooldownMs },
        },
      ],
    };
  }
  if (mem.intervalStart === null || now - mem.intervalStart >= c.reduceIntervalMs) {
    mem.intervalStart = now;
    mem.intervalBaseNotional = m.notional;
    mem.intervalReducedNotional = 0;
  }
  const room = Math.max(
    0,
    c.maxReduceFractionPerInterval * mem.intervalBaseNotional - mem.intervalReducedNotional,
  );
  const s = sizeReduction({
    equity: m.equity,
    holdings,
    pd: sizingPd,
    sigma1h: input.sigma1h ?? {},
    depth: input.depth ?? {},
    intervalRoom: room,
    config: c,
  });
  const values = {
    pd,
    sizingPd,
    pdScale: s.pdScale,
    kSigma: c.kSigma,
    horizonMs: c.horizonMs,
    targetFraction: s.targetFraction,
    stressedSlack: s.stressedSlack,
    reducedNotional: s.reducedNotional,
    intervalRoom: room,
    cappedBy: s.cappedBy.join(',') || null,
    noDepth: s.noDepth.join(',') || null,
    equityAfter: s.equityAfter,
    mmAfter: s.mmAfter,
  };
  if (s.reducedNotional < c.minReduceNotional) {
    const why =
      s.targetFraction === 0
        ? `the account already survives a ${c.kSigma}-sigma move over the horizon`
        : `the reduction allowed (${s.reducedNotional.toFixed(2)} USD) is below the minimum ${c.minReduceNotional} USD`;
    return {
      ...none,
      reasons: [
        { rule: 'pd-reduce-tier', text: `pd ${pd.toFixed(4)} is in the reduce tier but ${why}`, values },
      ],
    };
  }
  mem.lastReduceAt = now;
  mem.intervalReducedNotional += s.reducedNotional;
  // x: what the reduction leaves (at the marks), for a leverage cap that follows it
  mem.reducedLeverage = s.equityAfter > 0 ? (m.notional - s.reducedNotional) / s.equityAfter : 0;
  return {
    qtys: s.qtys,
    equityAfter: s.equityAfter,
    mmAfter: s.mmAfter,
    reasons: [
      {
        rule: 'pd-reduce-tier',
        text: `${sizingPd === pd ? `pd ${pd.toFixed(4)} >= ${c.pdReduce}` : `pd ${pd.toFixed(4)} held by the margin ratio (sized as at ${sizingPd})`}: reduce ${s.reducedNotional.toFixed(2)} USD of exposure toward surviving a ${c.kSigma}-sigma move`,
        values,
      },
    ],
  };
}

/**
 * A field-by-field copy of the memory: an object spread here cost about 1 us a decision (V8's generic
 * copy path), the largest single cost of a backtest's risk engine.
 */
function copyMemory(m: PolicyMemory): PolicyMemory {
  return {
    action: m.action,
    since: m.since,
    pdLevel: m.pdLevel,
    marginWatch: m.marginWatch,
    lastReduceAt: m.lastReduceAt,
    intervalStart: m.intervalStart,
    intervalBaseNotional: m.intervalBaseNotional,
    intervalReducedNotional: m.intervalReducedNotional,
    flaggedAt: m.flaggedAt ?? null,
    reducedLeverage: m.reducedLeverage ?? null,
  };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}
