import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyStats, readEventsFile } from '../../src/events/reader.js';
import type { CanonicalEvent } from '../../src/events/schema.js';
import { MarginBook } from '../../src/margin/index.js';
import {
  JsonlFileSink,
  loadScenario,
  MemorySink,
  namedScenarios,
  PREEMPT_ORDER_PREFIX,
  parseScenario,
  type RiskEngine,
  ScenarioError,
  SimulationInputError,
  simulate,
} from '../../src/sim/index.js';
import { SCENARIOS_DIR } from '../../src/sim/scenario/load.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runToFile(
  name: string,
  scenario: string,
  accounts: number,
  seed: number,
  riskEngine?: RiskEngine,
) {
  const path = join(dir, name);
  const sink = new JsonlFileSink(path);
  const summary = await simulate(scenario, { accounts, seed, sink, ...(riskEngine ? { riskEngine } : {}) });
  await sink.close();
  return { path, summary };
}

describe('simulate', () => {
  it('orders its history by ts: a trader due inside a fast minute liquidation pass acts after the pass', async () => {
    // may-2021's fast minutes have marks and liquidation passes every 10 s; with 2,000 traders some are due
    // within the 100 ms between a mark and its pass (their events were stamped before the pass's)
    const sink = new MemorySink();
    await simulate('may-2021', { accounts: 2000, seed: 11, sink });
    let inversions = 0;
    for (let i = 1; i < sink.events.length; i++)
      if ((sink.events[i] as CanonicalEvent).ts < (sink.events[i - 1] as CanonicalEvent).ts) inversions++;
    expect(sink.events.length).toBeGreaterThan(300_000);
    expect(inversions).toBe(0);
  }, 120_000);

  it('writes a history every line of which the canonical reader accepts, and the same seed gives the same bytes', async () => {
    const a = await runToFile('a.jsonl.gz', 'flash-crash', 120, 7);
    const b = await runToFile('b.jsonl.gz', 'flash-crash', 120, 7);
    const c = await runToFile('c.jsonl.gz', 'flash-crash', 120, 8);
    const stats = emptyStats();
    let n = 0;
    for await (const _ of readEventsFile(a.path, stats)) n++;
    expect(n).toBe(a.summary.events);
    expect(stats.outOfOrder).toBe(0);
    expect(stats.valid).toBe(a.summary.events);
    for (const t of [
      'instrument',
      'mark',
      'book',
      'trade',
      'funding',
      'deposit',
      'order',
      'cancel',
      'fill',
    ] as const)
      expect(stats.byType[t], t).toBeGreaterThan(0);
    expect(readFileSync(a.path).equals(readFileSync(b.path))).toBe(true);
    expect(readFileSync(a.path).equals(readFileSync(c.path))).toBe(false);
  });

  it('replaying the history through the MarginBook finds exactly the accounts the venue liquidated, at the same marks', async () => {
    const sink = new MemorySink();
    const summary = await simulate('black-thursday-2020', { accounts: 250, seed: 3, sink });
    expect(summary.liquidations).toBeGreaterThan(20);
    const book = new MarginBook();
    const flagged = new Map<number, Set<string>>(); // mark batch ts -> accounts under MM right after it
    const liquidated = new Map<number, Set<string>>(); // mark batch ts -> accounts the venue liquidated before the next batch
    let batchTs = -1;
    let pendingCheck = false;
    const check = () => {
      const under = new Set<string>();
      for (const id of book.accountIds()) {
        const s = book.snapshot(id, { prices: false })!;
        if (s.positions.length > 0 || s.equity < 0) if (s.equity < s.mm) under.add(id);
      }
      flagged.set(batchTs, under);
      pendingCheck = false;
    };
    const events: CanonicalEvent[] = sink.events;
    for (let k = 0; k < events.length; k++) {
      const ev = events[k]!;
      if (pendingCheck && ev.ts !== batchTs) check();
      if (ev.type === 'mark' && ev.ts !== batchTs) {
        batchTs = ev.ts;
        pendingCheck = true;
      }
      if (ev.type === 'liquidation' || ev.type === 'bankruptcy') {
        const set = liquidated.get(batchTs) ?? new Set<string>();
        // ADL legs appear as liquidations of the bankrupt account only; record the account once
        set.add(ev.account);
        liquidated.set(batchTs, set);
      }
      book.apply(ev);
    }
    let compared = 0;
    for (const [ts, accounts] of liquidated) {
      const minute = Math.floor(ts / 60_000);
      for (const a of accounts) {
        expect(
          flagged.get(ts)?.has(a),
          `account ${a} liquidated after the marks of ${ts} (minute ${minute})`,
        ).toBe(true);
        compared++;
      }
    }
    // and the converse: nobody under MM was left alone
    for (const [ts, accounts] of flagged)
      for (const a of accounts) expect(liquidated.get(ts)?.has(a), `${a} under MM at ${ts}`).toBe(true);
    expect(compared).toBeGreaterThan(20);
  });

  it('a crash day liquidates many times the share of accounts a calm week does', async () => {
    const calm = await simulate('calm', { accounts: 300, seed: 1 });
    const crash = await simulate('black-thursday-2020', { accounts: 300, seed: 1 });
    const calmRate = calm.liquidatedAccounts / calm.accounts;
    const crashRate = crash.liquidatedAccounts / crash.accounts;
    expect(calmRate).toBeGreaterThan(0);
    expect(calmRate).toBeLessThan(0.15);
    expect(crashRate).toBeGreaterThan(3 * calmRate);
    // several behaviours contribute, and defaults are not confined to one of them
    const hit = Object.values(crash.byBehaviour).filter((b) => b.liquidated > 0).length;
    expect(hit).toBeGreaterThanOrEqual(5);
  });
});

describe('risk engine hook', () => {
  it('an engine that does nothing leaves the history byte-identical', async () => {
    const plain = await runToFile('plain.jsonl', 'flash-crash', 80, 11);
    const hooked = await runToFile('hooked.jsonl', 'flash-crash', 80, 11, () => []);
    expect(readFileSync(plain.path).equals(readFileSync(hooked.path))).toBe(true);
  });

  it('early reductions execute as reduce-only taker fills with preempt- order ids, and other traders keep their draws', async () => {
    let target: { account: string; symbol: string; qty: number } | undefined;
    let calls = 0;
    const engine: RiskEngine = (ctx) => {
      calls++;
      if (target || ctx.minute < 300) return [];
      for (const id of ctx.book.accountIds()) {
        const p = ctx.book.positionsOf(id)[0];
        if (p && p.qty !== 0) {
          target = { account: id, symbol: p.symbol, qty: Math.abs(p.qty) / 2 };
          expect(ctx.market.map((m) => m.symbol)).toContain(p.symbol);
          return [target, { account: 'nobody', symbol: p.symbol, qty: 1 }];
        }
      }
      return [];
    };
    const base = new MemorySink();
    await simulate('flash-crash', { accounts: 80, seed: 11, sink: base });
    const sink = new MemorySink();
    const summary = await simulate('flash-crash', { accounts: 80, seed: 11, sink, riskEngine: engine });
    expect(calls).toBe(1440);
    expect(target).toBeDefined();
    const fills = sink.events.filter((e) => e.type === 'fill' && e.orderId?.startsWith(PREEMPT_ORDER_PREFIX));
    expect(fills).toHaveLength(1);
    const f = fills[0]!;
    expect(f).toMatchObject({ account: target!.account, symbol: target!.symbol, liquidity: 'taker' });
    if (f.type === 'fill') expect(f.qty).toBeCloseTo(target!.qty, 9);
    const order = sink.events.find(
      (e) => e.type === 'order' && e.orderId === (f.type === 'fill' ? f.orderId : ''),
    );
    expect(order).toMatchObject({ reduceOnly: true, price: null });
    expect(summary.reductions).toBe(1);
    // the market and everyone's arrival are the same: marks and first deposits do not depend on the engine
    const marks = (evs: CanonicalEvent[]) =>
      evs.filter((e) => e.type === 'mark').map((e) => JSON.stringify(e));
    expect(marks(sink.events)).toEqual(marks(base.events));
    const firstDeposits = (evs: CanonicalEvent[]) => {
      const m = new Map<string, string>();
      for (const e of evs) if (e.type === 'deposit' && !m.has(e.account)) m.set(e.account, JSON.stringify(e));
      return [...m.values()].sort();
    };
    expect(firstDeposits(sink.events)).toEqual(firstDeposits(base.events));
  });
});

describe('scenarios', () => {
  it('every named scenario loads', () => {
    const names = namedScenarios();
    for (const n of [
      'calm',
      'black-thursday-2020',
      'may-2021',
      'ftx-2022',
      'oct-2025',
      'flash-crash',
      'luna-2022',
      'jun-2022',
      'aug-2024',
      'feb-2025',
      'jan-2022',
      'feb-2026',
      'aug-2023',
      'apr-2025',
      'mar-2023',
      'apr-2024',
      'dec-2024',
      'late-feb-2025',
      'aug-2022',
      'jul-2024',
      'jan-2026',
      'late-jun-2022',
      'mar-2025',
      'mar-2024',
      'sep-2022',
      'sep-2019',
      'early-jan-2021',
      'jan-2021',
      'feb-2021',
      'may-2020',
      'apr-2021',
      'late-jan-2021',
      'mar-2020',
    ])
      expect(names).toContain(n);
    for (const n of names) expect(loadScenario(n).scenario.name).toBe(n);
  });

  it('a scenario that extends a template is the template with its own fields and name filled in', () => {
    const template = JSON.parse(
      readFileSync(join(SCENARIOS_DIR, 'templates', 'cccagg-btc-eth-sol.json'), 'utf8'),
    ) as Record<string, unknown>;
    // written out by hand: what the template says for jan-2022, with jan-2022's own fields
    const named = JSON.parse(readFileSync(loadScenario('jan-2022').source, 'utf8')) as Record<
      string,
      unknown
    >;
    expect(named.extends).toBe('templates/cccagg-btc-eth-sol.json');
    const { extends: _e, ...own } = named;
    const explicit = JSON.parse(JSON.stringify({ ...template, ...own }).replaceAll('{name}', 'jan-2022'));
    expect(loadScenario('jan-2022').scenario).toEqual(parseScenario(explicit, 'x', SCENARIOS_DIR).scenario);
    expect(loadScenario('jan-2022').scenario.funding).toMatchObject({ file: 'data/jan-2022-funding.csv' });
    // refused, naming the field: no name of its own, a missing template, a template that extends another
    const at = join(dir, 'extends');
    mkdirSync(at, { recursive: true });
    const load = (scenario: object) => {
      writeFileSync(join(at, 's.json'), JSON.stringify(scenario));
      return () => loadScenario(join(at, 's.json'));
    };
    const { name: _n, ...unnamed } = named;
    expect(load({ ...unnamed, extends: 'x.json' })).toThrow(/field extends: .*needs its own name/);
    expect(load({ ...named, extends: 'none.json' })).toThrow(/field extends: no template at .*none\.json/);
    writeFileSync(join(at, 't.json'), JSON.stringify({ extends: 'u.json' }));
    expect(load({ ...named, extends: 't.json' })).toThrow(
      /field extends: .*t\.json extends another template/,
    );
    expect(load({ ...named, extends: 3 })).toThrow(/field extends: must be the path of a template file/);
  });

  it('a bad scenario is refused with the field at fault, an unknown name lists the named ones', () => {
    const raw = JSON.parse(readFileSync(loadScenario('calm').source, 'utf8')) as Record<string, unknown>;
    expect(() => parseScenario({ ...raw, end: raw.start }, 'x.json', dir)).toThrow(
      /x.json: field end: must be after start/,
    );
    expect(() => parseScenario({ ...raw, instruments: [] }, 'x.json', dir)).toThrow(ScenarioError);
    expect(() => loadScenario('no-such-scenario')).toThrow(/named scenarios: .*calm/);
  });

  it('bad options change nothing and say what is wrong', async () => {
    await expect(simulate('calm', { accounts: 0, seed: 1 })).rejects.toThrow(SimulationInputError);
    await expect(simulate('calm', { accounts: 10, seed: 1.5 })).rejects.toThrow(/seed must be an integer/);
  });
});
