#!/usr/bin/env bash
# Regenerates the README's backtests for a model: every named scenario at 2,000 accounts with seed 1 (report, charts),
# and the threshold sweeps (seeds 1, 2 and 3 on the seven judged real crash days, on feb-2025, the threshold-selection
# day, on jan-2022, feb-2026, aug-2023, apr-2025, mar-2023, apr-2024 and dec-2024, the days added 2026-12-07 in the
# morning, and on late-feb-2025, aug-2022 and jul-2024, added at 09:44 UTC; on jan-2026, late-jun-2022 and mar-2025,
# added at noon to judge the leverage cap, on mar-2024 and sep-2022, added at 15:24 to judge the reduce-tier hold, and
# on sep-2019, early-jan-2021, jan-2021 and feb-2021, added at 16:54 to measure the shipped model on 2019-2021, and
# on may-2020, apr-2021, late-jan-2021 and mar-2020, added at 19:56 to measure it there again,
# the sweeps are those judgements' runs at the shipped settings, seeds 1 and 2, the model at its defaults only), each with the seed and accounts its sweep.json records. The sweeps run the predictive settings of the sweeps already in docs/backtests
# (--predictive-from: each pdReduce and gate they ran). The margin-ratio rule's runs do not use the model, so they
# are taken from the same files (--ratio-from refuses unless the liquidation-only run is the same to the cent); only
# the predictive runs run.
# POLICY_CONFIG (JSON, as --policy-config) is passed to every run; each sweep runs its pdReduce and gate
# (reduceGateMarginRatio) too when the file lacks them, and judges that run (sweep-summary). The rule's runs are still
# reused, all of those in the earlier sweep: they do not depend on the pd tier's settings (--ratio-from checks the
# rest).
#   [MODEL=models/default] [OUT=docs/backtests] [POLICY_CONFIG=JSON] bash training/refresh-backtests.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/default}
out=${OUT:-docs/backtests}
days=("$@")
[ ${#days[@]} -gt 0 ] || days=(black-thursday-2020 may-2021 ftx-2022 oct-2025 luna-2022 jun-2022 aug-2024 flash-crash feb-2025
  jan-2022 feb-2026 aug-2023 apr-2025 mar-2023 apr-2024 dec-2024 late-feb-2025 aug-2022 jul-2024
  jan-2026 late-jun-2022 mar-2025 mar-2024 sep-2022 sep-2019 early-jan-2021 jan-2021 feb-2021 may-2020 apr-2021 late-jan-2021 mar-2020)
config=()
[ -z "${POLICY_CONFIG:-}" ] || config=(--policy-config "$POLICY_CONFIG")
run() { node bin/preempt.js "$@" --model "$model" "${config[@]}"; }
for day in "${days[@]}"; do
  run backtest --scenario "$day" --accounts 2000 --seed 1 --out "$out/$day"
  for sweep in sweep sweep-seed2 sweep-seed3; do
    ratio="docs/backtests/$day/$sweep/sweep.json"
    [ -f "$ratio" ] || continue
    read -r seed accounts < <(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(j.seed, j.accounts)' "$ratio")
    # the predictive settings $ratio ran (each pdReduce and gate) run with this model; the rule's runs are taken
    run backtest --sweep --scenario "$day" --accounts "$accounts" --seed "$seed" \
      --predictive-from "$ratio" --ratio-from "$ratio" --out "$out/$day/$sweep"
  done
done
