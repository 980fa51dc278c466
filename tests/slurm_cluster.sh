#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM tests and for trying the submitit launcher by hand:
# munged, a private MariaDB + slurmdbd (accounting: sacct, which submitit polls for job states), slurmctld and
# slurmd (Debian's slurm-wlm 22.05), all as root, no cgroups (ProctrackType=proctrack/linuxproc).
#
#   tests/slurm_cluster.sh start     # waits until sinfo shows the node idle; prints `export SLURM_CONF=...`
#   tests/slurm_cluster.sh stop
#   tests/slurm_cluster.sh status
#
# Needs root and `apt-get install slurm-wlm slurmdbd munge mariadb-server` (.ci/run installs them). Everything
# lives in $SWEEP_SLURM_DIR (default /tmp/sdxl-sweep-slurm): configs, state, spool, database and logs. Ports:
# $SWEEP_SLURM_PORT (default 6817) for slurmctld and the three after it (slurmd, MariaDB, slurmdbd), on this
# machine only.
set -euo pipefail
dir="${SWEEP_SLURM_DIR:-/tmp/sdxl-sweep-slurm}"
conf="$dir/slurm.conf"
port="${SWEEP_SLURM_PORT:-6817}"
db_port=$((port + 2))
dbd_port=$((port + 3))
export SLURM_CONF="$conf"

say() { echo "slurm_cluster: $*" >&2; }

wait_for() { # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "$what did not come up in $seconds s; logs in $dir"
  tail -n 5 "$dir"/*.log >&2 2>/dev/null || true
  exit 1
}

stop() {
  for name in slurmd slurmctld slurmdbd mysql; do
    pidfile="$dir/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
  done
}

start_munge() {
  # The clients (libslurm) look for munged's socket in /run/munge; munged refuses root without --force.
  munge -n </dev/null >/dev/null 2>&1 && return 0
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if id munge >/dev/null 2>&1; then
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged || munged --force
  else
    munged --force
  fi
  wait_for 20 munged munge -n
}

start_accounting() {
  # A private MariaDB (own data dir, socket and port, 127.0.0.1 only) and slurmdbd in front of it.
  if [ ! -d "$dir/mysql/mysql" ]; then
    mariadb-install-db --datadir="$dir/mysql" --user=root --auth-root-authentication-method=socket \
      --skip-test-db >"$dir/mysql-install.log" 2>&1
  fi
  nohup mariadbd --datadir="$dir/mysql" --user=root --socket="$dir/mysql.sock" --port="$db_port" \
    --bind-address=127.0.0.1 --pid-file="$dir/mysql.pid" --log-error="$dir/mysql.log" >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb --socket="$dir/mysql.sock" -uroot -e 'select 1'
  mariadb --socket="$dir/mysql.sock" -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  printf '%s\n' "AuthType=auth/munge" "DbdHost=localhost" "DbdPort=$dbd_port" "SlurmUser=root" \
    "PidFile=$dir/slurmdbd.pid" "LogFile=$dir/slurmdbd.log" "StorageType=accounting_storage/mysql" \
    "StorageHost=127.0.0.1" "StoragePort=$db_port" "StorageUser=slurm" "StoragePass=slurm" \
    "StorageLoc=slurm_acct_db" >"$dir/slurmdbd.conf"
  chmod 600 "$dir/slurmdbd.conf"
  # slurmdbd reads its config from beside slurm.conf (SLURM_CONF's folder).
  slurmdbd
  wait_for 60 slurmdbd sacctmgr -i list cluster
  sacctmgr -i add cluster sweeptest >/dev/null 2>&1 || true
}

write_conf() {
  local host cpus mem_mb
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
  printf '%s\n' "ClusterName=sweeptest" "SlurmctldHost=$host" "SlurmUser=root" "SlurmdUser=root" \
    "AuthType=auth/munge" "CredType=cred/munge" "SlurmctldPort=$port" "SlurmdPort=$((port + 1))" \
    "StateSaveLocation=$dir/state" "SlurmdSpoolDir=$dir/spool" \
    "SlurmctldPidFile=$dir/slurmctld.pid" "SlurmdPidFile=$dir/slurmd.pid" \
    "SlurmctldLogFile=$dir/slurmctld.log" "SlurmdLogFile=$dir/slurmd.log" \
    "ProctrackType=proctrack/linuxproc" "TaskPlugin=task/none" "MpiDefault=none" \
    "SchedulerType=sched/backfill" "SelectType=select/cons_tres" "SelectTypeParameters=CR_Core" \
    "ReturnToService=2" "AccountingStorageType=accounting_storage/slurmdbd" \
    "AccountingStorageHost=localhost" "AccountingStoragePort=$dbd_port" "JobAcctGatherType=jobacct_gather/none" \
    "SlurmdTimeout=30" "InactiveLimit=0" "KillWait=10" "MinJobAge=300" \
    "NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN" \
    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >"$conf"
}

start() {
  for tool in munged slurmctld slurmd slurmdbd mariadbd sinfo sbatch sacct; do
    command -v "$tool" >/dev/null || { say "$tool not found: apt-get install slurm-wlm slurmdbd munge mariadb-server"; exit 3; }
  done
  [ "$(id -u)" = 0 ] || { say "needs root (slurmd runs jobs as their user)"; exit 3; }
  stop
  mkdir -p "$dir/state" "$dir/spool"
  rm -f "$dir/sacct.log"  # the jobs of this session only (tests/test_slurm.py appends to it)
  write_conf
  start_munge
  start_accounting
  slurmctld
  slurmd
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    if [ "$state" = idle ]; then
      say "node $(hostname -s) idle, accounting on; logs in $dir"
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 1
  done
  say "the node did not come up idle in 60 s (state: ${state:-none}); logs in $dir"
  tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo -N ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
