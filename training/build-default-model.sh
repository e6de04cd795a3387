#!/usr/bin/env bash
# Rebuilds the shipped model models/default from scratch: simulated histories over real price paths
# (issue: training and validation on different crash days), then the training job.
#   bash training/build-default-model.sh [ACCOUNTS] [SEED] [WORKDIR]
# Training days: the calm week, may-2021, ftx-2022, oct-2025 and the synthetic flash crash.
# Validation (the test metrics): black-thursday-2020, a crash day the model never sees in training.
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=${1:-2000}
seed=${2:-11}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
for sc in calm may-2021 ftx-2022 oct-2025 flash-crash black-thursday-2020; do
  [ -f "$work/$sc.jsonl.gz" ] || node bin/preempt.js simulate --scenario "$sc" --accounts "$accounts" --seed "$seed" --out "$work/$sc.jsonl.gz" --no-progress
done
node bin/preempt.js train \
  --events "$work/calm.jsonl.gz" "$work/may-2021.jsonl.gz" "$work/ftx-2022.jsonl.gz" "$work/oct-2025.jsonl.gz" "$work/flash-crash.jsonl.gz" \
  --validate "$work/black-thursday-2020.jsonl.gz" \
  --out models/default --epochs "${EPOCHS:-30}" --seed "$seed"
