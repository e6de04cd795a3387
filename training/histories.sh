# Sourced by the training scripts: the shipped recipe's training windows and the simulation of its histories.
# Training days: the calm week, may-2021, ftx-2022, oct-2025, the synthetic flash crash, luna-2022, jun-2022 and
# aug-2024.
TRAIN_DAYS=(calm may-2021 ftx-2022 oct-2025 flash-crash luna-2022 jun-2022 aug-2024)

# simulate_missing FILE SCENARIO ACCOUNTS SEED: simulates the history into FILE unless it exists
simulate_missing() {
  [ -f "$1" ] || node bin/preempt.js simulate --scenario "$2" --accounts "$3" --seed "$4" --out "$1" --no-progress
}
