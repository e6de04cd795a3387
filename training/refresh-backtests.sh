#!/usr/bin/env bash
# Regenerates the README's backtests for a model: every named scenario at 2,000 accounts with seed 1 (report,
# charts), and the threshold sweeps (seeds 1, 2 and 3 on the seven judged real crash days, on feb-2025, the
# threshold-selection day, and on jan-2022 and feb-2026, the days added 2026-12-07). The margin-ratio rule's
# sweep runs do not use the model, so they are taken from
# the sweeps already in docs/backtests
# (--ratio-from refuses unless the liquidation-only run is the same to the cent); only the predictive runs run.
# POLICY_CONFIG (JSON, as --policy-config) is passed to every run; its pdReduce and gate
# (reduceGateMarginRatio) are added to every sweep's grid, so that each sweep judges them (sweep-summary). The
# rule's runs are still reused: they do not depend on the pd tier's settings (--ratio-from checks the rest).
#   [MODEL=models/default] [OUT=docs/backtests] [POLICY_CONFIG=JSON] bash training/refresh-backtests.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/default}
out=${OUT:-docs/backtests}
days=("$@")
[ ${#days[@]} -gt 0 ] || days=(black-thursday-2020 may-2021 ftx-2022 oct-2025 luna-2022 jun-2022 aug-2024 flash-crash feb-2025
  jan-2022 feb-2026)
config=()
own_pd='' own_gate=''
if [ -n "${POLICY_CONFIG:-}" ]; then
  config=(--policy-config "$POLICY_CONFIG")
  own_pd=$(node -e 'const c = JSON.parse(process.argv[1]); if (c.pdReduce !== undefined) console.log(c.pdReduce)' "$POLICY_CONFIG")
  own_gate=$(node -e 'const c = JSON.parse(process.argv[1]); if (c.reduceGateMarginRatio !== undefined) console.log(c.reduceGateMarginRatio)' "$POLICY_CONFIG")
fi
# with_own LIST VALUE: the comma-separated LIST with VALUE added unless it is empty or already there
with_own() {
  if [ -z "$2" ] || [[ ",$1," == *",$2,"* ]]; then echo "$1"; else echo "$1,$2"; fi
}
run() { node bin/preempt.js "$@" --model "$model" "${config[@]}"; }
for day in "${days[@]}"; do
  run backtest --scenario "$day" --accounts 2000 --seed 1 --out "$out/$day"
  for sweep in sweep sweep-seed2 sweep-seed3; do
    ratio="docs/backtests/$day/$sweep/sweep.json"
    [ -f "$ratio" ] || continue
    seed=1
    [ "$sweep" = sweep-seed2 ] && seed=2
    [ "$sweep" = sweep-seed3 ] && seed=3
    if [ "$day" = feb-2025 ]; then
      # the threshold-selection day: the pd thresholds swept too, the same grid on every seed
      grid=(--pd-thresholds 0.02,0.05,0.1 --gates 3,5,8 --ratio-thresholds 1.5,2,3,5,8,12)
    elif [ "$day" = jan-2022 ] || [ "$day" = feb-2026 ]; then
      # the days added 2026-12-07: the rule's whole grid on every seed
      grid=(--pd-thresholds 0.02,0.1 --gates 3,5,8 --ratio-thresholds 1.5,2,3,5,8,12)
    elif [ "$sweep" = sweep-seed3 ]; then
      grid=(--pd-thresholds 0.02,0.1 --gates 5,6.5 --ratio-thresholds 1.5,2,3,5,8,12)
    elif [ "$day" = black-thursday-2020 ]; then
      grid=(--pd-thresholds 0.02,0.2,0.5 --gates 5,8,12 --ratio-thresholds 1.5,2,3,5,8,12)
    else
      grid=(--pd-thresholds 0.02 --gates 3,5,8 --ratio-thresholds 3,5,8,12)
    fi
    grid[1]=$(with_own "${grid[1]}" "$own_pd")
    grid[3]=$(with_own "${grid[3]}" "$own_gate")
    run backtest --sweep --scenario "$day" --accounts 2000 --seed "$seed" "${grid[@]}" \
      --ratio-exit-factors 1,1.5,2 --ratio-from "$ratio" --out "$out/$day/$sweep"
  done
done
