/**
 * The harness of the risk-engine hook tests: flash-crash with 80 traders (seed 11), without a risk engine, with
 * one that returns no actions, and with one that acts on every other account of the book from minute 200 to 900.
 */
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MemorySink, type RiskEngine, simulate } from '../../src/sim/index.js';
import type { RiskActions, SimulationSummary } from '../../src/sim/venue/types.js';

const RUN = { accounts: 80, seed: 11 } as const;

export interface WindowedRuns {
  /** no risk engine */
  plain: { events: CanonicalEvent[] };
  /** a risk engine that asks for nothing (`none` actions) every minute */
  idle: { events: CanonicalEvent[]; summary: SimulationSummary };
  /** the acting engine's run (run twice; `deterministic` says whether both gave the same events) */
  acted: { events: CanonicalEvent[]; summary: SimulationSummary };
  deterministic: boolean;
  /** whether `account` was acted on at `ts` (strictly between a look and the next) */
  inWindow: (account: string, ts: number) => boolean;
}

export async function windowedRuns(
  none: RiskActions,
  act: (ids: string[]) => RiskActions,
): Promise<WindowedRuns> {
  const plain = new MemorySink();
  await simulate('flash-crash', { ...RUN, sink: plain });
  const idle = new MemorySink();
  const idleSummary = await simulate('flash-crash', { ...RUN, sink: idle, riskEngine: () => none });
  const windows = new Map<string, [number, number][]>();
  const engine: RiskEngine = (ctx) => {
    if (ctx.minute < 200 || ctx.minute >= 900) return none;
    const ids = ctx.book.accountIds().filter((_, i) => i % 2 === 0);
    for (const id of ids) {
      const w = windows.get(id) ?? [];
      w.push([ctx.ts, ctx.ts + 60_000]);
      windows.set(id, w);
    }
    return act(ids);
  };
  const run = async () => {
    const sink = new MemorySink();
    const summary = await simulate('flash-crash', { ...RUN, sink, riskEngine: engine });
    return { events: sink.events, summary };
  };
  const a = await run();
  windows.clear();
  const b = await run();
  return {
    plain: { events: plain.events },
    idle: { events: idle.events, summary: idleSummary },
    acted: b,
    deterministic: JSON.stringify(b.events) === JSON.stringify(a.events),
    inWindow: (account, ts) => (windows.get(account) ?? []).some(([from, to]) => ts > from && ts < to),
  };
}
