#!/usr/bin/env bash
# libFuzzer (with AddressSanitizer) on every parser of outside bytes:
#   ops/fuzz/run.sh [SECONDS] [TARGET...]      (make fuzz; FUZZ_SECONDS=60 by default)
#   FUZZ_RUNS=1000000 ops/fuzz/run.sh 0 ...     each target until it has run that many inputs
# Each target starts from its committed seeds (Fuzz/corpus/TARGET) and the inputs earlier runs
# kept (.build/fuzz-corpus/TARGET); an input that crashes is written to Fuzz/found/ for a fix
# and a regression test (Fuzz/regressions/TARGET, replayed by `make test`).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
fuzzer=.build/fuzz/debug/plateseg-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(png tiff safetensors artifact artifact-payload kaggle-rle coco-rle manifest truth-csv truth-coco truth-names ensemble-json int8-ranges names)
fi
mkdir -p Fuzz/found
printf '| target | seconds | executions | executions/s | corpus | crashes |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
status=0
for t in "${targets[@]}"; do
  mkdir -p ".build/fuzz-corpus/$t"
  log=".build/fuzz-corpus/$t.log"
  limits=(-max_total_time="$seconds")
  if [ -n "${FUZZ_RUNS:-}" ]; then limits=(-runs="$FUZZ_RUNS" -max_total_time="$seconds"); fi
  started=$(date +%s)
  set +e
  # A field may be up to 268 million pixels: allow the decoder that much memory. Leak detection
  # is off: Foundation's own file reading leaks a 4 KB buffer on an empty file.
  ASAN_OPTIONS=detect_leaks=0 "$fuzzer" "$t" "${limits[@]}" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 -detect_leaks=0 \
    -artifact_prefix="Fuzz/found/$t-" ".build/fuzz-corpus/$t" "Fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - started ))
  [ "$took" -gt 0 ] || took=1
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  corpus=$(ls ".build/fuzz-corpus/$t" | wc -l)
  crashes=$(ls Fuzz/found | grep -c "^$t-" || true)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$took" "$runs" "$((runs / took))" "$corpus" "$crashes"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "  $t: the fuzzer stopped ($rc); its report: $log" >&2
    grep -m 5 -E 'ERROR|Fatal error|SUMMARY' "$log" >&2 || true
  fi
done
exit $status
