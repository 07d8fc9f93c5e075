#!/usr/bin/env bash
# Scores the shipped models with the Swift engine on a split of ../shared/data (default: val):
# builds a plate folder of links to the split's images, runs it, and prints `plateseg eval`
# for each network alone and for the ensemble. Usage: training/eval_split.sh [split] [workers]
# PLATESEG_INTENSITY=auto|none|fixed:LO,HI chooses the intensity rule (default auto, as `run`);
# PLATESEG_PRECISION=fp32|bf16|auto what the networks compute in (default auto, as `run`).
set -euo pipefail
cd "$(dirname "$0")/.."
split=${1:-val}
workers=${2:-2}
data=${PLATESEG_DATA:-../shared/data/sartorius}
intensity=${PLATESEG_INTENSITY:-auto}
precision=${PLATESEG_PRECISION:-auto}
out=out/eval-$split${PLATESEG_INTENSITY:+-${intensity//[:,]/-}}${PLATESEG_PRECISION:+-$precision}
bin=.build/release/plateseg
swift build -c release --product plateseg >/dev/null  # a no-op when current; a stale binary would score old code
rm -rf "$out" && mkdir -p "$out/plate"
awk -F, -v s="$split" 'NR > 1 && $5 == s && $7 == "" { print $1 }' "$data/images.csv" | while read -r id; do
  ln -s "$(realpath "$data/images/train/$id.png")" "$out/plate/$id.png"
done
echo "split $split: $(ls "$out/plate" | wc -l) images (known-issue images left out)"
models=$(for m in yolox maskrcnn upernet; do if [ -f "models/$m.safetensors" ]; then printf '%s,' "$m"; fi; done)
"$bin" run "$out/plate" --plate "$split" --models "${models%,}" --workers "$workers" --db "$out/eval.sqlite" --models-dir models --intensity "$intensity" --precision "$precision" >/dev/null || true
"$bin" eval --db "$out/eval.sqlite" --plate "$split" --truth "$data/annotations/train_annotations.csv" --model all --models-dir models
