#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL server:
#   ops/postgres/test-server.sh COMMAND [ARGS...]
# Installs Debian's postgresql when missing, initdb's a cluster in a temporary folder, starts it
# on a free loopback port with password authentication, runs COMMAND with
#   PLATESEG_TEST_POSTGRES  postgres://plateseg@127.0.0.1:PORT/postgres (an admin URL)
#   PGPASSWORD              the password of that role
#   PLATESEG_TEST_PGCTL     a command that runs pg_ctl on this cluster (tests restart it)
# and stops and removes the cluster when COMMAND ends, whatever its outcome. A server that
# cannot start fails the run: nothing is skipped.
# With PLATESEG_PG_NETNS=NAME and PLATESEG_PG_HOST=ADDRESS the server runs inside that network
# namespace on ADDRESS:5432 and accepts the hosts of ADDRESS's /24 (ops/cluster/test.sh).
set -euo pipefail

# One function, read whole before it runs.
main() {

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test-server: installing postgresql"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres account.
as_owner=()
if [ -n "${PLATESEG_PG_NETNS:-}" ]; then as_owner=(ip netns exec "$PLATESEG_PG_NETNS"); fi
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  as_owner+=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/plateseg-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
data="$dir/data"
password="plateseg-$RANDOM$RANDOM"

cleanup() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "test-server: no free port found" >&2; return 1
}
host=127.0.0.1
if [ -n "${PLATESEG_PG_NETNS:-}" ]; then host=$PLATESEG_PG_HOST; port=5432; else port=$(free_port); fi

printf '%s\n' "$password" > "$dir/pwfile"
[ "$(id -u)" -eq 0 ] && chown postgres "$dir/pwfile"
"${as_owner[@]}" "$bin/initdb" -D "$data" -U plateseg --pwfile="$dir/pwfile" --auth=scram-sha-256 \
  --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
rm -f "$dir/pwfile"
if [ "$host" != 127.0.0.1 ]; then echo "host all all ${host%.*}.0/24 scram-sha-256" >> "$data/pg_hba.conf"; fi
cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '$host'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
CONF
"${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
  || { echo "test-server: PostgreSQL did not start:"; cat "$dir/server.log"; exit 1; }

export PLATESEG_TEST_POSTGRES="postgres://plateseg@$host:$port/postgres"
export PGPASSWORD="$password"
export PLATESEG_TEST_PGCTL="${as_owner[*]} $bin/pg_ctl -D $data -l $dir/server.log"
echo "test-server: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $host:$port${PLATESEG_PG_NETNS:+ (network namespace $PLATESEG_PG_NETNS)}"
set +e
"$@"
status=$?
set -e
exit $status
}
main "$@"
