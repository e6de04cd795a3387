#!/usr/bin/env bash
# Leave-one-day-out: each of the shipped recipe's eight training windows held out in turn. For each window the
# recipe is trained on the other seven (`preempt train --events <the other seven> --validate <the window>`), and
# `preempt evaluate` scores the held-out window with the model's stored baselines. This is the README's "crash
# days it never trained on" table.
#   [EPOCHS=30] [JOBS=2] bash training/leave-one-day-out.sh [ACCOUNTS] [SEED] [WORKDIR] [OUTDIR]
# WORKDIR holds the histories as training/build-default-model.sh simulates them (the same ACCOUNTS and SEED); any
# missing one is simulated. OUTDIR gets, per window, the fold model (OUTDIR/<window>/) and its evaluation
# (OUTDIR/<window>.json, OUTDIR/<window>.md). JOBS folds train side by side (default 2, one per core of our
# machines; each holds about 6 GB at 2,000 accounts).
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-2000}
seed=${2:-11}
work=${3:-$(mktemp -d)}
out=${4:-$work/leave-one-day-out}
jobs=${JOBS:-2}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || {
  echo "JOBS must be a positive integer, got '$jobs'" >&2
  exit 2
}
mkdir -p "$work" "$out"
days=(calm may-2021 ftx-2022 oct-2025 flash-crash luna-2022 jun-2022 aug-2024)
for sc in "${days[@]}"; do
  [ -f "$work/$sc.jsonl.gz" ] || node bin/preempt.js simulate --scenario "$sc" --accounts "$accounts" --seed "$seed" --out "$work/$sc.jsonl.gz" --no-progress
done

fold() {
  local held=$1
  local events=()
  for sc in "${days[@]}"; do
    [ "$sc" = "$held" ] || events+=("$work/$sc.jsonl.gz")
  done
  node bin/preempt.js train --events "${events[@]}" --validate "$work/$held.jsonl.gz" \
    --out "$out/$held" --epochs "${EPOCHS:-30}" --seed "$seed" --no-progress >"$out/$held.train.log" 2>&1
  node bin/preempt.js evaluate --model "$out/$held" --events "$work/$held.jsonl.gz" \
    --out "$out/$held.json" >"$out/$held.md" 2>"$out/$held.evaluate.log"
  echo "$held: $out/$held.md"
}

# JOBS folds at a time; a failed fold fails the script (its logs name the cause)
pids=()
for held in "${days[@]}"; do
  fold "$held" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
