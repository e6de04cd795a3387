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
