/**
 * Sizing a partial liquidation: close in steps (a configured fraction of each large position, the whole
 * of a small one), largest maintenance margin first, until the account is back at `MM * (1 + buffer)`
 * (closing at the mark; liquidation fees included). An account with equity <= 0 is closed out whole.
 */
import { notionalOf } from './arithmetic.js';
import type { PolicyConfig } from './policy-config.js';
import { type Holding, mmAt } from './what-if.js';

export interface LiquidationSizing {
  /** contracts, signed, after the plan */
  qtys: number[];
  steps: number;
  /** true when every position is closed */
  full: boolean;
  equityAfter: number; // USD at the marks, after estimated liquidation fees
  mmAfter: number; // USD
  /** USD: estimated liquidation fees (capped so they never create a deficit) */
  fees: number;
}

export function planLiquidation(
  equity: number,
  holdings: readonly Holding[],
  config: Pick<PolicyConfig, 'liquidationBuffer' | 'liquidationStepFraction' | 'smallPositionNotional'>,
): LiquidationSizing {
  const qtys = holdings.map((h) => h.qty);
  let mm = mmAt(holdings, qtys);
  let fees = 0;
  let steps = 0;
  const chargeFee = (h: Holding, closedQty: number): void => {
    const fee = Math.min(
      h.liquidationFeeRate * notionalOf(closedQty, h.contractSize, h.mark),
      Math.max(0, equity),
    );
    equity -= fee;
    fees += fee;
  };
  if (equity <= 0) {
    holdings.forEach((h, i) => {
      chargeFee(h, qtys[i]!);
      qtys[i] = 0;
    });
    return { qtys, steps: holdings.length, full: true, equityAfter: equity, mmAfter: 0, fees };
  }
  const target = 1 + config.liquidationBuffer;
  while (!(equity >= mm * target)) {
    let pick = -1;
    let pickMm = -1;
    for (let i = 0; i < holdings.length; i++) {
      if (qtys[i] === 0) continue;
      const h = holdings[i]!;
      const n = notionalOf(qtys[i]!, h.contractSize, h.mark);
      const m = mmAt([h], [qtys[i]!]);
      if (m > pickMm || (m === pickMm && n > 0 && pick < 0)) {
        pick = i;
        pickMm = m;
      }
    }
    if (pick < 0) break;
    const h = holdings[pick]!;
    const held = Math.abs(qtys[pick]!);
    const small = notionalOf(held, h.contractSize, h.mark) <= config.smallPositionNotional;
    const step = config.liquidationStepFraction * Math.abs(h.qty);
    const close = small || step >= held ? held : step;
    chargeFee(h, close);
    qtys[pick] = close === held ? 0 : qtys[pick]! - Math.sign(h.qty) * close;
    mm = mmAt(holdings, qtys);
    steps++;
  }
  return { qtys, steps, full: qtys.every((q) => q === 0), equityAfter: equity, mmAfter: mm, fees };
}
