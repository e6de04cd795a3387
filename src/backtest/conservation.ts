/**
 * Value conservation over a whole simulated run, from its events alone. The traders trade against an outside
 * market (resting liquidity), so the market is kept as one more account fed the mirror image of every trade;
 * then, up to float rounding:
 *
 *   traders' equity + insurance fund + fees collected - socialised loss + the market's equity
 *     = initial insurance fund + deposits - withdrawals
 *
 * A liquidation closed against the ADL queue and its `adl` counterparts mirror to nothing, as they should.
 */
import type { CanonicalEvent } from '../events/schema.js';
import { MarginBook } from '../margin/index.js';
import { bookValue } from '../margin/ledger.js';

const MARKET = '__outside-market__';

export interface ConservationResult {
  /** USD: left-hand side */
  held: number;
  /** USD: right-hand side */
  contributed: number;
  /** USD: held - contributed */
  residual: number;
  /** USD: the largest absolute amount that moved, for a relative tolerance */
  scale: number;
}

export class ConservationTracker {
  private readonly venue: MarginBook;
  private readonly market = new MarginBook();
  private external = 0; // USD: deposits - withdrawals
  private scale = 0; // USD

  constructor(private readonly initialInsuranceFund: number) {
    this.venue = new MarginBook({ insuranceFund: initialInsuranceFund });
  }

  add(ev: CanonicalEvent): void {
    this.venue.apply(ev);
    switch (ev.type) {
      case 'instrument':
      case 'mark':
      case 'funding':
        this.market.apply(ev);
        break;
      case 'deposit':
        this.external += ev.amount;
        this.scale = Math.max(this.scale, ev.amount);
        break;
      case 'withdrawal':
        this.external -= ev.amount;
        break;
      case 'fill':
      case 'liquidation':
      case 'adl':
        this.market.apply({
          type: 'fill',
          ts: ev.ts,
          account: MARKET,
          symbol: ev.symbol,
          side: ev.side === 'buy' ? 'sell' : 'buy',
          qty: ev.qty,
          price: ev.price,
          fee: 0,
          liquidity: 'maker',
        });
        this.scale = Math.max(this.scale, ev.qty * ev.price);
        break;
      default:
        break;
    }
  }

  result(): ConservationResult {
    const marketEquity = this.market.snapshot(MARKET)?.equity ?? 0;
    const held = bookValue(this.venue) + marketEquity;
    const contributed = this.initialInsuranceFund + this.external;
    return {
      held,
      contributed,
      residual: held - contributed,
      scale: Math.max(this.scale, Math.abs(contributed)),
    };
  }
}

/** A run whose accounting does not add up: its table would be wrong, so the backtest stops. */
export class BacktestIntegrityError extends Error {
  readonly code = 'BACKTEST_INTEGRITY';
}

/** What `assertRunConsistent` compares: the backtest's measures from the events, the simulator's own. */
export interface RunAccounts {
  /** USD: bankruptcy deficits, from the liquidation events */
  bankruptcyDeficits: number;
  /** USD: deficits + ADL cost, the table's bad debt */
  badDebt: number;
  /** USD */
  adlCost: number;
  /** accounts liquidated at least once, from the events */
  liquidations: number;
  adlEvents: number;
}

/** USD: how far the two computations of the deficits may differ (float sums in another order) */
const DEFICIT_TOLERANCE_USD = 0.05;

/**
 * Every run's books must balance before its row is reported: value conserved (|residual| under a nano-dollar
 * per dollar moved, plus a micro-dollar), the deficits the events record equal to the simulator's own bad
 * debt, bad debt = deficits + ADL cost, and the liquidated accounts and ADL events counted alike by both.
 * Throws `BacktestIntegrityError` naming the run and the figures.
 */
export function assertRunConsistent(
  run: string,
  m: RunAccounts,
  conservation: ConservationResult,
  summary: { badDebt: number; liquidatedAccounts: number; adlEvents: number },
): void {
  const fail = (what: string) => {
    throw new BacktestIntegrityError(`run ${run}: ${what}; its figures cannot be reported`);
  };
  const r = conservation;
  if (!(Math.abs(r.residual) <= 1e-9 * r.scale + 1e-6))
    fail(
      `value not conserved: held ${r.held} USD, contributed ${r.contributed} USD, residual ${r.residual} USD`,
    );
  const tol = DEFICIT_TOLERANCE_USD + 1e-9 * r.scale;
  if (!(Math.abs(m.bankruptcyDeficits - summary.badDebt) <= tol))
    fail(
      `bankruptcy deficits ${m.bankruptcyDeficits} USD from the events, ${summary.badDebt} USD by the simulator`,
    );
  if (!(Math.abs(m.badDebt - (m.bankruptcyDeficits + m.adlCost)) <= 1e-6 + 1e-12 * r.scale))
    fail(`bad debt ${m.badDebt} USD is not deficits ${m.bankruptcyDeficits} + ADL cost ${m.adlCost} USD`);
  if (m.liquidations !== summary.liquidatedAccounts)
    fail(
      `${m.liquidations} accounts liquidated by the events, ${summary.liquidatedAccounts} by the simulator`,
    );
  if (m.adlEvents !== summary.adlEvents)
    fail(`${m.adlEvents} ADL events counted, ${summary.adlEvents} by the simulator`);
}
