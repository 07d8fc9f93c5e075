#!/usr/bin/env bash
# How far int8 moves one network from its own fp32 output, with chosen layers kept float: on the
# images precision_check.sh uses (split=train, outside every calibration set, never val), the
# network alone in fp32, then in int8 once per candidate, each scored with the Sartorius metric
# against fp32's cells (1.0 = the same cells) and against the annotations.
# Usage: training/int8_agreement.sh NETWORK CANDIDATE...   where a CANDIDATE is a comma-separated
# list of layer scopes for `floatLayers` (models/MODEL_CARD.md, "Precision"), or - for none, e.g.
#   training/int8_agreement.sh yolox - backbone.backbone.stem,backbone.backbone.dark2
set -euo pipefail
cd "$(dirname "$0")/.."
network=$1; shift
data=${PLATESEG_DATA:-../shared/data/sartorius}
truth=$data/annotations/train_annotations.csv
out=out/int8-agreement
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
score() { "$bin" eval --db "$1" --plate p --truth "$2" --model "$network" --models-dir models | tail -1 | cut -c 10-; }
"$bin" run "$out/plate" --plate p --models "$network" --db "$out/fp32.sqlite" --precision fp32 >/dev/null 2>&1
"$bin" export --db "$out/fp32.sqlite" --plate p --format coco --out "$out/fp32.json" >/dev/null
echo "candidate | against fp32: images score shsy5y astro cort cells | against the annotations: the same"
echo "fp32 | $(score "$out/fp32.sqlite" "$out/fp32.json") | $(score "$out/fp32.sqlite" "$truth")"
for candidate in "$@"; do
  dir=$out/models-$(echo "$candidate" | md5sum | cut -c 1-8)
  mkdir -p "$dir" && for f in models/*; do ln -sf "$(realpath "$f")" "$dir/"; done
  rm "$dir/$network.int8.json"
  python3 - "models/$network.int8.json" "$dir/$network.int8.json" "$candidate" <<'PY'
import json, sys
ranges = json.load(open(sys.argv[1]))
ranges["floatLayers"] = [] if sys.argv[3] == "-" else sys.argv[3].split(",")
json.dump(ranges, open(sys.argv[2], "w"), indent=2, sort_keys=True)
PY
  "$bin" run "$out/plate" --plate p --models "$network" --db "$dir/int8.sqlite" --models-dir "$dir" --precision int8 >/dev/null 2>&1
  echo "$candidate | $(score "$dir/int8.sqlite" "$out/fp32.json") | $(score "$dir/int8.sqlite" "$truth")"
done
