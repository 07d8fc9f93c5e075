#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: Debian's slurm-wlm and munge.
#   ops/slurm/single-node.sh start   install when missing, configure, start munged, slurmctld, slurmd
#   ops/slurm/single-node.sh stop    stop them
# The configuration needs no cgroups (proctrack/linuxproc, task/none), so it runs in containers.
set -euo pipefail
conf=/etc/slurm/slurm.conf
state=/var/lib/plateseg-slurm

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "single-node: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  # A clean start: daemons of an earlier run (or their stale sockets) would answer for the old key or config.
  stop
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged --force
  local node cpus memory
  node=$(hostname -s)
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  mkdir -p "$state/ctld" "$state/d" /var/log/slurm
  cat > "$conf" <<CONF
ClusterName=plateseg-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=/run/plateseg-slurmctld.pid
SlurmdPidFile=/run/plateseg-slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
KillWait=30
SchedulerParameters=sched_interval=1
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -c
  slurmd
  for _ in $(seq 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then echo "single-node: Slurm up ($node, $cpus CPUs)"; return; fi
    sleep 1
  done
  echo "single-node: the node did not come up:" >&2
  sinfo >&2 || true
  tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  return 1
}

stop() {
  if pgrep -x slurmctld >/dev/null; then scontrol shutdown >/dev/null 2>&1 || true; fi
  for _ in $(seq 20); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.5; done
  pkill -9 -x slurmd 2>/dev/null || true
  pkill -9 -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  for _ in $(seq 20); do pgrep -x munged >/dev/null || break; sleep 0.2; done
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
