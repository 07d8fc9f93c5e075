#!/usr/bin/env bash
# A plate across hosts, for real: five network namespaces on this machine joined by veth pairs
# to a bridge (all made here, all removed at the end; no traffic leaves them):
#   db           PostgreSQL on 10.231.7.1:5432
#   worker-a     plateseg worker --db postgres://plateseg@10.231.7.1/...   (10.231.7.2)
#   worker-b     the same                                                  (10.231.7.3)
#   coordinator  plateseg submit / status / export                          (10.231.7.4)
# Midway, worker-a's link is cut while it holds a job: its lease expires, worker-b redoes that
# work, and when the link comes back worker-a's late completion is refused by the fencing
# token. The plate's cells must equal those of a one-machine SQLite run of the same plate.
#   ops/cluster/test.sh            (root; iproute2; uses .build/debug unless PLATESEG_BIN is set)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PLATESEG_BIN:-$root/.build/debug}/plateseg
[ -x "$bin" ] || { echo "cluster-test: $bin is missing; run swift build first" >&2; exit 1; }
command -v ip >/dev/null || { echo "cluster-test: needs iproute2 (ip)" >&2; exit 1; }

if [ "${1:-}" != --inside ]; then
  tag="ps$$"
  work=$(mktemp -d /tmp/plateseg-cluster.XXXXXX)
  chmod 755 "$work"
  switch="${tag}sw"
  hosts=(db worker-a worker-b coordinator)
  declare -A address=([db]=10.231.7.1 [worker-a]=10.231.7.2 [worker-b]=10.231.7.3 [coordinator]=10.231.7.4)
  teardown() {
    set +e
    for h in "${hosts[@]}"; do ip netns pids "$tag-$h" 2>/dev/null | xargs -r kill -9; done
    for h in "${hosts[@]}"; do ip netns del "$tag-$h" 2>/dev/null; done
    ip netns del "$switch" 2>/dev/null
    rm -rf "$work"
  }
  trap teardown EXIT

  ip netns add "$switch"
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" link set br0 up
  i=0
  for h in "${hosts[@]}"; do
    ns="$tag-$h"
    i=$((i + 1))
    ip netns add "$ns"
    ip link add "${tag}h$i" type veth peer name "${tag}s$i"
    ip link set "${tag}h$i" netns "$ns"
    ip link set "${tag}s$i" netns "$switch"
    ip -n "$ns" link set "${tag}h$i" name eth0
    ip -n "$ns" addr add "${address[$h]}/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$switch" link set "${tag}s$i" master br0
    ip -n "$switch" link set "${tag}s$i" up
  done
  echo "cluster-test: hosts ${hosts[*]} in namespaces $tag-*"
  PLATESEG_PG_NETNS="$tag-db" PLATESEG_PG_HOST="${address[db]}" \
    "$root/ops/postgres/test-server.sh" "$0" --inside "$tag" "$work"
  exit $?
fi

# --- inside: the server is up in the db namespace; PLATESEG_TEST_POSTGRES and PGPASSWORD are set.
tag=$2
work=$3
on() { local host=$1; shift; ip netns exec "$tag-$host" "$@"; }
fail() { echo "cluster-test: FAILED: $*" >&2; exit 1; }

url="${PLATESEG_TEST_POSTGRES%/*}/plate?connect_timeout=2"
sql() { on coordinator psql "${PLATESEG_TEST_POSTGRES%/*}/plate" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
on coordinator psql "$PLATESEG_TEST_POSTGRES" -X -q -c "CREATE DATABASE plate"

# The plate on the "shared filesystem" (the same path on every host), the small test networks.
mkdir -p "$work/plate" "$work/models"
cp "$root"/demo/plate/*.png "$root/demo/plate/manifest.csv" "$work/plate/"
cp "$root"/Tests/ModelsTests/Fixtures/{yolox,maskrcnn,upernet}.safetensors "$root/models/intensity.json" "$work/models/"
plate_args=("$work/plate" --plate demo --manifest "$work/plate/manifest.csv")
worker_args=(worker --models-dir "$work/models" --lease 4 --exit-when-drained)

# Unreachable before it is reachable: the coordinator host cannot see a worker host's loopback.
if on coordinator "$bin" status --db "${url/10.231.7.1/10.231.7.2}" >/dev/null 2>&1; then fail "reached a server that is not there"; fi

on coordinator "$bin" submit "${plate_args[@]}" --db "$url"
total=$(sql "SELECT COUNT(*) FROM jobs")

# `ip netns exec` and env exec the worker: $! is its pid, which its lease owner names.
ip netns exec "$tag-worker-a" env PLATESEG_LOG=info "$bin" "${worker_args[@]}" --db "$url" 2>"$work/worker-a.log" &
a=$!
# Cut worker-a's link once it has done some jobs and holds one.
for _ in $(seq 600); do
  done_by_a=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")
  held=$(sql "SELECT string_agg(id::text, ',') FROM jobs WHERE state = 'running' AND lease_owner LIKE '%:$a:%'")
  [ "$done_by_a" -ge 3 ] && [ -n "$held" ] && break
  sleep 0.1
done
[ -n "$held" ] || fail "worker-a never held a job"
on worker-a ip link set eth0 down
echo "cluster-test: cut worker-a's link while it held job(s) $held ($done_by_a of $total jobs done)"

ip netns exec "$tag-worker-b" env PLATESEG_LOG=info "$bin" "${worker_args[@]}" --db "$url" 2>"$work/worker-b.log" &
b=$!
wait "$b" || fail "worker-b exited with $?: $(tail -5 "$work/worker-b.log")"
left=$(sql "SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded'")
[ "$left" = 0 ] || fail "$left jobs not succeeded after worker-b drained the queue"
redone=$(sql "SELECT COUNT(*) FROM jobs WHERE id IN ($held) AND state = 'succeeded' AND attempts >= 2")
[ "$redone" -ge 1 ] || fail "the jobs worker-a held were not redone elsewhere"
echo "cluster-test: worker-b finished the plate and redid job(s) $held"

on worker-a ip link set eth0 up
for _ in $(seq 600); do kill -0 "$a" 2>/dev/null || break; sleep 0.1; done
kill -0 "$a" 2>/dev/null && fail "worker-a did not finish after its link came back"
wait "$a" || fail "worker-a exited with $?"
refused=0
for id in ${held//,/ }; do
  grep -q "job $id: lease lost" "$work/worker-a.log" && refused=$((refused + 1))
done
[ "$refused" -ge 1 ] || fail "worker-a's late completion was not refused: $(tail -5 "$work/worker-a.log")"
grep -q "cannot store its result yet" "$work/worker-a.log" || fail "worker-a never saw the database go away"
echo "cluster-test: worker-a's late completion of $held was refused by the fencing token"

# The same plate on one machine, SQLite, no network: the same cells, byte for byte.
on coordinator "$bin" export --db "$url" --plate demo --out "$work/cluster.csv"
"$bin" run "${plate_args[@]}" --db "$work/local.sqlite" --models-dir "$work/models" --workers 2 >/dev/null 2>&1
"$bin" export --db "$work/local.sqlite" --plate demo --out "$work/local.csv"
cmp -s "$work/cluster.csv" "$work/local.csv" || fail "the cluster's cells differ from the one-machine run's"
cells=$(($(wc -l <"$work/cluster.csv") - 1))
echo "cluster-test: passed ($total jobs, $cells cells, equal to the one-machine SQLite run)"
