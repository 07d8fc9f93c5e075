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
python3 - "$data" "$out/plate" <<'PY'
import csv, glob, json, os, sys
data, plate = sys.argv[1], sys.argv[2]
calibration = {name for f in glob.glob("models/*.int8.json") for name in json.load(open(f))["images"]}
by_type = {}
for row in sorted(csv.DictReader(open(os.path.join(data, "images.csv"))), key=lambda r: r["id"], reverse=True):
    if row["split"] == "train" and not row["known_issue"] and row["id"] + ".png" not in calibration:
        by_type.setdefault(row["cell_type"], []).append(row["id"])
for ids in by_type.values():
    for i in ids[:20]:
        os.symlink(os.path.realpath(os.path.join(data, "images", "train", i + ".png")), os.path.join(plate, i + ".png"))
PY
for p in fp32 "${@:-auto}"; do
  "$bin" run "$out/plate" --plate check --db "$out/$p.sqlite" --precision "$p" >/dev/null 2>&1 || true
  echo "$p: $("$bin" query --db "$out/$p.sqlite" --format csv | awk -F, 'NR > 1 { printf "%s %s  ", $4, $5 }')"
done
