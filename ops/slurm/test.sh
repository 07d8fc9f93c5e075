#!/usr/bin/env bash
# ops/slurm/plateseg-workers.sbatch against a real one-node Slurm on this machine: a plate is
# submitted to PostgreSQL, `sbatch --array=1-2` starts two workers, `scancel` stops one of them
# while it holds a job (SIGTERM: it finishes that job and exits), and the other finishes the
# plate. Its cells must equal those of a one-machine SQLite run.
#   ops/slurm/test.sh        (root; starts Slurm with ops/slurm/single-node.sh and PostgreSQL
#                             with ops/postgres/test-server.sh; uses .build/debug unless PLATESEG_BIN)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PLATESEG_BIN:-$root/.build/debug}/plateseg
[ -x "$bin" ] || { echo "slurm-test: $bin is missing; run swift build first" >&2; exit 1; }

if [ "${1:-}" != --inside ]; then
  "$root/ops/slurm/single-node.sh" start
  trap '"$root/ops/slurm/single-node.sh" stop' EXIT
  "$root/ops/postgres/test-server.sh" "$0" --inside
  exit $?
fi

fail() { echo "slurm-test: FAILED: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/plateseg-slurm.XXXXXX)
chmod 755 "$work"
job=""
trap '[ -n "$job" ] && scancel "$job" 2>/dev/null; rm -rf "$work"' EXIT

admin=$PLATESEG_TEST_POSTGRES
psql "$admin" -X -q -c "CREATE DATABASE slurm_plate"
url="${admin%/*}/slurm_plate"
sql() { psql "$url" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

mkdir -p "$work/plate" "$work/models"
cp "$root"/demo/plate/*.png "$root/demo/plate/manifest.csv" "$work/plate/"
cp "$root"/Tests/ModelsTests/Fixtures/{yolox,maskrcnn,upernet}.safetensors "$root/models/intensity.json" "$work/models/"
plate_args=("$work/plate" --plate demo --manifest "$work/plate/manifest.csv")
"$bin" submit "${plate_args[@]}" --db "$url"
total=$(sql "SELECT COUNT(*) FROM jobs")

# The environment is what a user exports before sbatch; the password travels as PGPASSWORD.
job=$(cd "$work" && PLATESEG_DB="$url" PLATESEG_MODELS="$work/models" PLATESEG_BIN="$bin" \
  PLATESEG_WORKER_ARGS="--lease 10" PLATESEG_LOG=info \
  sbatch --parsable --array=1-2 --cpus-per-task=1 --mem-per-cpu=1G --time=15 \
    --output="$work/worker-%a.log" "$root/ops/slurm/plateseg-workers.sbatch")
echo "slurm-test: submitted array job $job"

# Task 1's worker, once it holds a job.
pid=""
for _ in $(seq 600); do
  task=$(scontrol show job "${job}_1" 2>/dev/null | grep -o 'JobId=[0-9]*' | head -1 | cut -d= -f2 || true)
  [ -n "$task" ] && pid=$(scontrol listpids "$task" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ && $3 == "batch" {print $1}' | head -1 || true)
  if [ -n "$pid" ] && [ "$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner LIKE '%:$pid:%'")" -ge 1 ]; then break; fi
  sleep 0.1
done
[ -n "$pid" ] || fail "task 1 never ran: $(squeue -a; cat "$work"/worker-*.log 2>/dev/null)"
tr '\0' '\n' < "/proc/$pid/environ" | grep -qx 'OMP_NUM_THREADS=1' || fail "the worker's OpenMP threads are not --cpus-per-task"
tr '\0' '\n' < "/proc/$pid/environ" | grep -qx 'OMP_WAIT_POLICY=PASSIVE' || fail "the worker's OpenMP threads spin"
held=$(sql "SELECT string_agg(id::text, ',') FROM jobs WHERE state = 'running' AND lease_owner LIKE '%:$pid:%'")
squeue -h -j "$job" -o '%i %t' | sed 's/^/slurm-test: squeue: /'
scancel "${job}_1"
echo "slurm-test: scancel ${job}_1 while its worker (pid $pid) held job(s) $held"

for _ in $(seq 1800); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 0.2
done
[ -z "$(squeue -h -j "$job")" ] || fail "the array job did not end: $(squeue -j "$job")"
grep -q "finishing the job in hand" "$work/worker-1.log" || fail "task 1 did not get SIGTERM: $(tail -5 "$work/worker-1.log")"
for id in ${held//,/ }; do
  grep -q "job $id .* done" "$work/worker-1.log" || fail "task 1 did not finish job $id, the one in hand, before exiting"
done
left=$(sql "SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'")
[ "$left" = 0 ] || fail "$left of $total jobs did not succeed: $(tail -5 "$work"/worker-*.log)"
echo "slurm-test: task 1 finished job(s) $held and exited; task 2 finished the plate ($total jobs)"

"$bin" export --db "$url" --plate demo --out "$work/slurm.csv"
"$bin" run "${plate_args[@]}" --db "$work/local.sqlite" --models-dir "$work/models" --workers 2 >/dev/null 2>&1
"$bin" export --db "$work/local.sqlite" --plate demo --out "$work/local.csv"
cmp -s "$work/slurm.csv" "$work/local.csv" || fail "the cells differ from the one-machine run's"
echo "slurm-test: passed (cells equal to the one-machine SQLite run)"
