#!/usr/bin/env bash
# Regenerates the README's backtests for a model: every named scenario at 2,000 accounts with seed 1 (report,
# charts), and the threshold sweeps (seeds 1, 2 and 3 on the seven judged real crash days, on feb-2025, the
# threshold-selection day, and on jan-2022, feb-2026, aug-2023 and apr-2025, the days added 2026-12-07). The
# margin-ratio rule's sweep runs do not use the model, so they are taken from the sweeps already in docs/backtests
# (--ratio-from refuses unless the liquidation-only run is the same to the cent); only the predictive runs run.
# POLICY_CONFIG (JSON, as --policy-config) is passed to every run; each sweep runs its pdReduce and gate
# (reduceGateMarginRatio) too when the grid lacks them, and judges that run (sweep-summary). The rule's runs are
# still reused, all of those in the earlier sweep: they do not depend on the pd tier's settings (--ratio-from
# checks the rest).
#   [MODEL=models/default] [OUT=docs/backtests] [POLICY_CONFIG=JSON] bash training/refresh-backtests.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/default}
out=${OUT:-docs/backtests}
days=("$@")
[ ${#days[@]} -gt 0 ] || days=(black-thursday-2020 may-2021 ftx-2022 oct-2025 luna-2022 jun-2022 aug-2024 flash-crash feb-2025
  jan-2022 feb-2026 aug-2023 apr-2025)
config=()
[ -z "${POLICY_CONFIG:-}" ] || config=(--policy-config "$POLICY_CONFIG")
run() { node bin/preempt.js "$@" --model "$model" "${config[@]}"; }
for day in "${days[@]}"; do
  run backtest --scenario "$day" --accounts 2000 --seed 1 --out "$out/$day"
  for sweep in sweep sweep-seed2 sweep-seed3; do
    ratio="docs/backtests/$day/$sweep/sweep.json"
    [ -f "$ratio" ] || continue
    seed=1
    [ "$sweep" = sweep-seed2 ] && seed=2
    [ "$sweep" = sweep-seed3 ] && seed=3
    # the predictive grid; the rule's runs are all those of $ratio
    if [ "$day" = feb-2025 ]; then
      # the threshold-selection day: the pd thresholds swept too, the same grid on every seed
      grid=(--pd-thresholds 0.02,0.05,0.1 --gates 3,5,8)
    elif [[ " jan-2022 feb-2026 aug-2023 apr-2025 " == *" $day "* ]]; then
      grid=(--pd-thresholds 0.02,0.1 --gates 3,5,8)
    elif [ "$sweep" = sweep-seed3 ]; then
      grid=(--pd-thresholds 0.02,0.1 --gates 5,6.5)
    elif [ "$day" = black-thursday-2020 ]; then
      grid=(--pd-thresholds 0.02,0.2,0.5 --gates 5,8,12)
    else
      grid=(--pd-thresholds 0.02 --gates 3,5,8)
    fi
    run backtest --sweep --scenario "$day" --accounts 2000 --seed "$seed" "${grid[@]}" \
      --ratio-from "$ratio" --out "$out/$day/$sweep"
  done
done
