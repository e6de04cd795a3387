#!/usr/bin/env bash
# Rebuilds the shipped model models/default from scratch: simulated histories over real price paths
# (issue: training and validation on different crash days), then the training job.
#   [OUT=models/NAME] [EPOCHS=30] bash training/build-default-model.sh [ACCOUNTS] [SEED] [WORKDIR]
# Training days: the calm week, may-2021, ftx-2022, oct-2025, the synthetic flash crash, luna-2022, jun-2022 and
# aug-2024 (seed SEED).
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
train_days=(calm may-2021 ftx-2022 oct-2025 flash-crash luna-2022 jun-2022 aug-2024)
train_files=()
for sc in "${train_days[@]}"; do
  train_files+=("$work/$sc.jsonl.gz")
  [ -f "$work/$sc.jsonl.gz" ] || node bin/preempt.js simulate --scenario "$sc" --accounts "$accounts" --seed "$seed" --out "$work/$sc.jsonl.gz" --no-progress
done
test_file="$work/black-thursday-2020-s$test_seed.jsonl.gz"
[ -f "$test_file" ] || node bin/preempt.js simulate --scenario black-thursday-2020 --accounts "$accounts" --seed "$test_seed" --out "$test_file" --no-progress
node bin/preempt.js train \
  --events "${train_files[@]}" \
  --validate "$test_file" \
  --out "${OUT:-models/default}" --epochs "${EPOCHS:-30}" --seed "$seed"
