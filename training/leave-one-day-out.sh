#!/usr/bin/env bash
# Leave-one-day-out: each of the shipped recipe's eight training windows held out in turn. For each window the
# recipe is trained on the other seven (`preempt train --events <the other seven> --validate <the window>`); its
# held-out metrics on that window, with the model's baselines, are the README's "crash days it never trained on"
# table (training scores the validation window, so no second pass is needed).
#   [EPOCHS=30] [JOBS=2] bash training/leave-one-day-out.sh [ACCOUNTS] [SEED] [WORKDIR] [OUTDIR]
# WORKDIR holds the histories as training/build-default-model.sh simulates them (the same ACCOUNTS and SEED); any
# missing one is simulated. OUTDIR gets, per window, the fold model OUTDIR/<window>/: the metrics in its
# metadata.json (`metrics`), the same as `preempt evaluate` gives, and report.md. JOBS folds train side by side
# (default 2, one per core of our machines; each holds about 6 GB at 2,000 accounts).
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
. training/histories.sh
for sc in "${TRAIN_DAYS[@]}"; do
  simulate_missing "$work/$sc.jsonl.gz" "$sc" "$accounts" "$seed"
done

fold() {
  local held=$1
  local events=()
  for sc in "${TRAIN_DAYS[@]}"; do
    [ "$sc" = "$held" ] || events+=("$work/$sc.jsonl.gz")
  done
  node bin/preempt.js train --events "${events[@]}" --validate "$work/$held.jsonl.gz" \
    --out "$out/$held" --epochs "${EPOCHS:-30}" --seed "$seed" --no-progress >"$out/$held.train.log" 2>&1
  echo "$held: $out/$held/report.md"
}

# JOBS folds at a time; a failed fold fails the script (its log names the cause)
pids=()
for held in "${TRAIN_DAYS[@]}"; do
  fold "$held" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
