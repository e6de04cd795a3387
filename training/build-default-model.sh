#!/usr/bin/env bash
# Rebuilds the shipped model models/default from scratch: simulated histories over real price paths
# (issue: training and validation on different crash days), then the training job.
#   [OUT=models/NAME] [EPOCHS=30] [DAYS="SCENARIO..."] bash training/build-default-model.sh [ACCOUNTS] [SEED] [WORKDIR]
# Training days: TRAIN_DAYS of training/histories.sh (seed SEED), or the scenarios DAYS names (space-separated).
# Validation (the test metrics): black-thursday-2020, a crash day the model never sees in training, simulated
# with seed SEED+1: a seed draws the traders (the same SEED gives every day the same trader population), so
# the test traders are other traders too.
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-2000}
seed=${2:-11}
work=${3:-$(mktemp -d)}
test_seed=$((seed + 1))
mkdir -p "$work"
. training/histories.sh
[ -z "${DAYS:-}" ] || read -r -a TRAIN_DAYS <<<"$DAYS"
train_files=()
for sc in "${TRAIN_DAYS[@]}"; do
  train_files+=("$work/$sc.jsonl.gz")
  simulate_missing "$work/$sc.jsonl.gz" "$sc" "$accounts" "$seed"
done
test_file="$work/black-thursday-2020-s$test_seed.jsonl.gz"
simulate_missing "$test_file" black-thursday-2020 "$accounts" "$test_seed"
node bin/preempt.js train \
  --events "${train_files[@]}" \
  --validate "$test_file" \
  --out "${OUT:-models/default}" --epochs "${EPOCHS:-30}" --seed "$seed"
