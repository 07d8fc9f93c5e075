#!/usr/bin/env bash
# Cells per type in fp32 and in other precisions on images no precision choice was made on: the
# last 20 by id of each cell type among `split=train` images without a known issue and outside
# every models/<network>.int8.json calibration set. Usage: training/precision_check.sh [PRECISION...]
# (default: auto). Prints one line of counts per precision, fp32 first.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${PLATESEG_DATA:-../shared/data/sartorius}
out=out/check-train
bin=.build/release/plateseg
swift build -c release --product plateseg >/dev/null
rm -rf "$out" && mkdir -p "$out/plate"
python3 training/heldout_plate.py "$data" "$out/plate"
for p in fp32 "${@:-auto}"; do
  "$bin" run "$out/plate" --plate check --db "$out/$p.sqlite" --precision "$p" >/dev/null 2>&1 || true
  echo "$p: $("$bin" query --db "$out/$p.sqlite" --format csv | awk -F, 'NR > 1 { printf "%s %s  ", $4, $5 }')"
done
