#!/usr/bin/env bash
# The ablation behind docs/ablation.md: each lever added in turn to the paper recipe, 15 epochs per arm,
# one CPU thread each, selection on the validation part of Training. Arms whose report exists are skipped,
# so a killed run continues where it stopped. Usage: bash scripts/ablation.sh [epochs]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-15}
PY=${PYTHON:-.venv/bin/python}
OUT=runs/ablation
WIDE="--model.stem-channels 16 --model.widths 32,64,128,256"
arms=(
  "pool2|--model.input-pool 2"
  "pool2-wide|--model.input-pool 2 $WIDE"
  "pool2-wide-ls|--model.input-pool 2 $WIDE --label-smoothing 0.1"
  "pool2-wide-ls-cosine|--model.input-pool 2 $WIDE --label-smoothing 0.1 --schedule cosine"
  "pool2-wide-ls-cosine-sgd|--model.input-pool 2 $WIDE --label-smoothing 0.1 --schedule cosine --optimizer sgd --lr 0.02 --weight-decay 0.0005"
)
mkdir -p "$OUT"
for arm in "${arms[@]}"; do
  name=${arm%%|*}
  flags=${arm#*|}
  [ -f "$OUT/$name/report.json" ] && { echo "skip $name (done)"; continue; }
  resume=""
  [ -f "$OUT/$name/last.pt" ] && resume="--resume"
  echo "== $name: $flags"
  # shellcheck disable=SC2086
  $PY -m fer train --out "$OUT/$name" --epochs "$EPOCHS" --threads 1 --register false --progress false \
    $flags $resume 2>&1 | grep --line-buffered -v " INFO " | tee -a "$OUT/$name.log"
done
