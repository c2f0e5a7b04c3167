#!/usr/bin/env bash
# The head's MLflow server and the backup loop of its run store (a sqlite file), each started once.
# `ray up` runs `start` every time it is (re)run: a service whose pid file names a live process of
# that service is left alone, so a second server does not fail to bind the port and a second loop
# does not race the first.
#
#   bash deploy/head_services.sh start   # restore the store from the bucket (if none here), start both
#   bash deploy/head_services.sh stop    # MLflow first, then the loop, which takes a final backup
#
# Settings: deploy/cluster.env; MLFLOW_DIR, MLFLOW_PORT, MLFLOW_BACKUP_URI, MLFLOW_ARTIFACTS_URI and
# MLFLOW_BACKUP_EVERY_S override the defaults below. MLFLOW_BACKEND_STORE_URI (e.g.
# postgresql+psycopg://mlflow@<rds-host>:5432/mlflow, password in ~/.pgpass or PGPASSWORD; the
# recommended store, see the README) replaces the sqlite file: then nothing is restored or backed up
# here (the database keeps the runs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster.env"
dir=${MLFLOW_DIR:-$HOME/mlflow}
port=${MLFLOW_PORT:-5000}
backup_uri=${MLFLOW_BACKUP_URI:-s3://$EXPERIMENT_BUCKET/mlflow/mlflow.db}
artifacts_uri=${MLFLOW_ARTIFACTS_URI:-s3://$EXPERIMENT_BUCKET/mlflow-artifacts}
every=${MLFLOW_BACKUP_EVERY_S:-300}
db=$dir/mlflow.db

pid_of() {  # the pid in $dir/$1.pid if that process is alive and is still this service
  local pidfile=$dir/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

start_once() {  # name, what its command line contains, command...
  local name=$1 marker=$2 pid
  shift 2
  if pid=$(pid_of "$name" "$marker"); then
    echo "$name already running (pid $pid)"
    return
  fi
  nohup "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
  echo "$name started (pid $!, log $dir/$name.log)"
}

stop_one() {  # name, marker: SIGTERM, then wait up to 120 s for it to exit
  local pid
  if pid=$(pid_of "$1" "$2"); then
    kill -TERM "$pid"
    for _ in $(seq 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then echo "$1 (pid $pid) did not stop" >&2; return 1; fi
    echo "$1 stopped"
  fi
  rm -f "$dir/$1.pid"
}

case ${1:-} in
  start)
    mkdir -p "$dir"
    cd "$(dirname "$here")"
    # A failed restore stops here (set -e): a server on an empty store, backed up, would overwrite
    # the bucket's copy.
    if [ -n "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
      start_once mlflow "mlflow server" mlflow server --host 127.0.0.1 --port "$port" \
        --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" --artifacts-destination "$artifacts_uri"
      exit 0
    fi
    python -m orchestrator.mlflow_backup restore --db "$db" --to "$backup_uri"
    start_once mlflow "mlflow server" mlflow server --host 127.0.0.1 --port "$port" \
      --backend-store-uri "sqlite:///$db" --artifacts-destination "$artifacts_uri"
    start_once backup "orchestrator.mlflow_backup loop" python -m orchestrator.mlflow_backup loop \
      --db "$db" --to "$backup_uri" --every "$every"
    ;;
  stop)
    stop_one mlflow "mlflow server"
    stop_one backup "orchestrator.mlflow_backup loop"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
