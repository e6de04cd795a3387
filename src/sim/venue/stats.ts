/**
 * Running counts of what the venue emitted, turned into the run summary at the end.
 */
import type { CanonicalEvent } from '../../events/schema.js';
import type { VenueFunds } from '../../margin/index.js';
import type { Trader } from '../traders/types.js';
import {
  type LeverageCapSummary,
  PREEMPT_ORDER_PREFIX,
  type ReduceOnlySummary,
  type SimulationSummary,
} from './types.js';

export class VenueStats {
  events = 0;
  readonly byType: Record<string, number> = {};
  liquidations = 0;
  liquidatedNotional = 0;
  bankruptcies = 0;
  badDebt = 0;
  adl = 0;
  reductions = 0;
  reducedNotional = 0;
  peakMinuteLiquidated = 0;
  private minuteLiquidated = 0;
  readonly liquidatedAccounts = new Set<string>();
  readonly bankruptAccounts = new Set<string>();
  readonly reduceOnly: ReduceOnlySummary = {
    restrictedAccounts: 0,
    rejectedOrders: 0,
    rejectedNotional: 0,
    cancelledOrders: 0,
  };
  readonly leverageCap: LeverageCapSummary = {
    cappedAccounts: 0,
    cutOrders: 0,
    cutNotional: 0,
    cancelledOrders: 0,
  };

  constructor(private readonly contractSize: (symbol: string) => number) {}

  count(ev: CanonicalEvent): void {
    this.events++;
    this.byType[ev.type] = (this.byType[ev.type] ?? 0) + 1;
    switch (ev.type) {
      case 'liquidation': {
        this.liquidations++;
        const n = ev.qty * ev.price * this.contractSize(ev.symbol);
        this.liquidatedNotional += n;
        this.minuteLiquidated += n;
        this.liquidatedAccounts.add(ev.account);
        break;
      }
      case 'bankruptcy':
        this.bankruptcies++;
        this.badDebt += ev.deficit;
        this.bankruptAccounts.add(ev.account);
        break;
      case 'adl':
        this.adl++;
        break;
      case 'fill':
        if (ev.orderId?.startsWith(PREEMPT_ORDER_PREFIX)) {
          this.reductions++;
          this.reducedNotional += ev.qty * ev.price * this.contractSize(ev.symbol);
        }
        break;
      default:
        break;
    }
  }

  endMinute(): void {
    this.peakMinuteLiquidated = Math.max(this.peakMinuteLiquidated, this.minuteLiquidated);
    this.minuteLiquidated = 0;
  }

  summary(
    base: Pick<SimulationSummary, 'scenario' | 'seed' | 'accounts' | 'minutes' | 'funding'>,
    traders: readonly Trader[],
    fundStart: number,
    funds: VenueFunds,
  ): SimulationSummary {
    const byBehaviour: SimulationSummary['byBehaviour'] = {};
    for (const t of traders) {
      const b = byBehaviour[t.behaviour] ?? { accounts: 0, liquidated: 0, bankrupt: 0 };
      byBehaviour[t.behaviour] = b;
      b.accounts++;
      if (this.liquidatedAccounts.has(t.id)) b.liquidated++;
      if (this.bankruptAccounts.has(t.id)) b.bankrupt++;
    }
    const money = (x: number): number => Math.round(x * 100) / 100;
    return {
      ...base,
      events: this.events,
      eventsByType: { ...this.byType },
      liquidations: this.liquidations,
      liquidatedAccounts: this.liquidatedAccounts.size,
      liquidatedNotional: money(this.liquidatedNotional),
      bankruptcies: this.bankruptcies,
      badDebt: money(this.badDebt),
      adlEvents: this.adl,
      insuranceFundStart: money(fundStart),
      insuranceFundEnd: money(funds.insuranceFund),
      insuranceCovered: money(funds.insuranceCovered),
      socialisedLoss: money(funds.socialisedLoss),
      reductions: this.reductions,
      reducedNotional: money(this.reducedNotional),
      peakLiquidatedNotionalPerMinute: money(this.peakMinuteLiquidated),
      reduceOnly: { ...this.reduceOnly, rejectedNotional: money(this.reduceOnly.rejectedNotional) },
      leverageCap: { ...this.leverageCap, cutNotional: money(this.leverageCap.cutNotional) },
      byBehaviour,
    };
  }
}
