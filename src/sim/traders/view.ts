/**
 * The TraderView a trader decides from, bound to one trader and minute at a time (one reusable object,
 * so that a decision allocates nothing for its view). Prices are read only up to the current minute.
 */
import type { AccountMargin, PositionMargin } from '../../margin/index.js';
import type { Venue } from '../venue/venue.js';
import type { Trader, TraderView } from './types.js';

export class TraderViewImpl implements TraderView {
  minute = 0;
  margin: AccountMargin | undefined;
  readonly symbolCount: number;

  constructor(private readonly venue: Venue) {
    this.symbolCount = venue.market.symbols.length;
  }

  bind(t: Trader, minute: number): void {
    this.minute = minute;
    this.margin = this.venue.book.snapshot(t.id, { prices: false });
  }

  mark(symbol: number): number {
    return this.venue.currentMark[symbol]!;
  }

  momentum(symbol: number, minutes: number): number {
    const s = this.venue.market.symbols[symbol]!;
    const back = Math.min(this.minute, Math.max(1, Math.round(minutes)));
    if (back === 0) return 0;
    const r = Math.log(this.venue.currentMark[symbol]! / s.marks[this.minute - back]!);
    return r / (Math.max(s.sigma[this.minute]!, 1e-9) * Math.sqrt(back));
  }

  volRatio(symbol: number): number {
    const s = this.venue.market.symbols[symbol]!;
    return s.sigma[this.minute]! / s.sigmaRef;
  }

  lotSize(symbol: number): number {
    return this.venue.market.symbols[symbol]!.config.lotSize;
  }

  maxLeverage(symbol: number): number {
    const tiers = this.venue.market.symbols[symbol]!.config.tiers;
    return 1 / tiers[0]!.imr;
  }

  position(symbol: number): PositionMargin | undefined {
    const name = this.venue.market.symbols[symbol]!.config.symbol;
    return this.margin?.positions.find((p) => p.symbol === name);
  }

  withdrawable(): number {
    const m = this.margin;
    return m ? Math.max(0, Math.min(m.cash, m.equity - m.im)) : 0;
  }
}
