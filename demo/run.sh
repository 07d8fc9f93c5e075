#!/usr/bin/env bash
# make demo: segment the 12-image demo plate with two worker processes, score it, write the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/plateseg
out=out/demo
mkdir -p "$out"

# Run the networks that ship in models/ (the ensemble uses whichever are there).
models=$(for m in yolox maskrcnn upernet; do if [ -f "models/$m.safetensors" ]; then printf '%s,' "$m"; fi; done)
models=${models%,}
if [ -z "$models" ]; then
  echo "demo: no model files in models/ (yolox/maskrcnn/upernet .safetensors); see models/MODEL_CARD.md" >&2
  exit 1
fi

"$bin" run demo/plate --plate demo --manifest demo/plate/manifest.csv --models "$models" --keep-tile-outputs \
  --workers 2 --db "$out/demo.sqlite" --models-dir models --redo-stale
echo
echo "Astrocytes in well C02:"
"$bin" query --db "$out/demo.sqlite" --plate demo --well C02 --cell-type astro
echo
echo "Score against the annotations (Sartorius metric, mAP over IoU 0.50-0.95):"
"$bin" eval --db "$out/demo.sqlite" --plate demo --truth demo/truth.csv --model all --models-dir models
"$bin" report --db "$out/demo.sqlite" --plate demo --out "$out/report" --models-dir models
echo
echo "Open $out/report/index.html in a browser. Database: $out/demo.sqlite (try: $bin status --db $out/demo.sqlite)"
