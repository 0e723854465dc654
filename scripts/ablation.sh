#!/usr/bin/env bash
# The ablation behind docs/ablation.md: the production recipe and one lever changed at a time, short runs,
# three seeds each (a seed draws the validation split, the initial weights, the shuffling and the augmentation,
# so arms with the same seed are paired), one CPU thread per run, $JOBS runs at a time, selection on the
# validation part of Training. Runs whose report exists are skipped, so a killed ablation continues where it
# stopped. Usage: bash scripts/ablation.sh [epochs] [seeds]; then python scripts/ablation_table.py
# ARMS picks arms by name (default: all); FLAGS go to every arm (e.g. FLAGS="--autocast off" on a CPU without
# native bfloat16), OUT names the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-8}
SEEDS=${2:-"0 1 2"}
PY=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-2}  # runs at a time: one per core
OUT=${OUT:-runs/ablation-e$EPOCHS}
arms=(
  "production|"
  "smooth|--label-smoothing 0.1"
  "sqrt-weights|--class-weights sqrt"
  "mixup|--mixup 0.2"
  "wide3|--model.stem-channels 24 --model.widths 48,96,192,384"
  "wide4|--model.stem-channels 32 --model.widths 64,128,256,512"
)
ARMS=${ARMS:-all}
FLAGS=${FLAGS:-}
mkdir -p "$OUT"
run() {  # name flags seed
  local dir="$OUT/$1-s$3"
  [ -f "$dir/report.json" ] && { echo "skip $1 seed $3 (done)"; return; }
  local resume=""
  [ -f "$dir/last.pt" ] && resume="--resume"
  echo "== $1 seed $3: $2"
  # shellcheck disable=SC2086
  $PY -m fer train --recipe production --out "$dir" --epochs "$EPOCHS" --seed "$3" --threads 1 \
    --register false --progress false $FLAGS $2 $resume > "$dir.log" 2>&1 ||
    { echo "FAILED $1 seed $3 (see $dir.log; rerun this script to resume it)"; return 1; }
}
jobs_running=0
failed=0
for seed in $SEEDS; do
  for arm in "${arms[@]}"; do
    [ "$ARMS" = all ] || [[ " $ARMS " == *" ${arm%%|*} "* ]] || continue
    run "${arm%%|*}" "${arm#*|}" "$seed" &
    jobs_running=$((jobs_running + 1))
    if [ "$jobs_running" -ge "$JOBS" ]; then
      wait -n || failed=$((failed + 1))  # one failed run does not stop the others
      jobs_running=$((jobs_running - 1))
    fi
  done
done
while [ "$jobs_running" -gt 0 ]; do
  wait -n || failed=$((failed + 1))
  jobs_running=$((jobs_running - 1))
done
[ "$failed" -eq 0 ] || { echo "$failed run(s) failed"; exit 1; }
