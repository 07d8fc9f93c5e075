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
python3 training/heldout_plate.py "$data" "$out/plate"
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
