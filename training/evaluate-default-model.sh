#!/usr/bin/env bash
# Measures the README's held-out figures of a model again: the test day (black-thursday-2020, seed 12) with and
# without the two hours before its fall (held-out table, pd bands, expected defaults by hour), and the eight
# training windows with other traders (seed 12). Histories missing from WORKDIR are simulated first (2,000
# accounts, as training/build-default-model.sh does; it leaves black-thursday-2020-s12 in its WORKDIR).
#   [MODEL=models/default] bash training/evaluate-default-model.sh [WORKDIR] [OUTDIR]
# Writes OUTDIR/<day>.txt (the tables `preempt evaluate` prints) and OUTDIR/<day>.json (the same as JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/default}
work=${1:-$(mktemp -d)}
out=${2:-$work/evaluation}
mkdir -p "$work" "$out"
sim() { [ -f "$work/$1-s12.jsonl.gz" ] || node bin/preempt.js simulate --scenario "$1" --accounts 2000 --seed 12 --out "$work/$1-s12.jsonl.gz" --no-progress >/dev/null; }
evaluate() {
  local day=$1
  shift
  node bin/preempt.js evaluate --model "$model" --events "$work/$day-s12.jsonl.gz" --out "$out/$day.json" "$@" >"$out/$day.txt"
  echo "$out/$day.txt"
}
sim black-thursday-2020
evaluate black-thursday-2020 --exclude 2020-03-12T09:00Z..2020-03-12T11:00Z
for day in may-2021 ftx-2022 oct-2025 luna-2022 jun-2022 aug-2024 flash-crash calm; do
  sim "$day"
  evaluate "$day"
done
