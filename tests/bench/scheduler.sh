#!/usr/bin/env bash
# End-to-end scheduler benchmark (issue 4): the seed-style 10,000-task graph
# (../shared/workloads/make_seed.py) with every task `noop`, run to success
#   1. by `updraft dags test` (one process), and
#   2. by `updraft scheduler` after `updraft dags trigger` (the real path),
# on SQLite and on the PostgreSQL at 127.0.0.1:5432. Prints wall time, task instances per
# second, the scheduler's peak RSS and its CPU time per task instance.
# Usage: bash tests/bench/scheduler.sh [TASKS]   (uses target/release/updraft; builds it first)
#        UPDRAFT_BIN=/path/to/updraft bash tests/bench/scheduler.sh   (another build, e.g. to
#        compare two commits in one sitting)
set -euo pipefail
cd "$(dirname "$0")/../.."
TASKS=${1:-10000}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${UPDRAFT_BIN:-}" ]; then
  BIN="$UPDRAFT_BIN"
else
  cargo build --release --bin updraft >/dev/null 2>&1
  BIN="$TARGET/release/updraft"
fi
WORK=$(mktemp -d)
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT

python3 ../shared/workloads/make_seed.py --tasks "$TASKS" --out "$WORK/dags/seed" --dag-id bench >/dev/null
# Every task noop: drop the SQL, keep the tables (so edges are still inferred from depends_on).
find "$WORK/dags/seed/tasks" -name '*.yaml' -exec sed -i 's/^sql: .*/operator: noop/' {} +
rm -rf "$WORK/dags/seed/sql"

KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
row() { printf '| %-34s | %-10s | %8.2f s | %9.0f /s | %8.1f MiB | %6.1f µs |\n' "$@"; }
echo "| run | database | wall | task instances | peak RSS | CPU per task |"
echo "| --- | --- | --- | --- | --- | --- |"

for DB in sqlite postgres; do
  DATA="$WORK/data-$DB"
  mkdir -p "$DATA"
  export UPDRAFT__CORE__DATA_DIR="$DATA" UPDRAFT__CORE__ENCRYPTION_KEY="$KEY"
  unset UPDRAFT__DATABASE__URL
  if [ "$DB" = postgres ]; then
    NAME="updraft_bench_$$"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" -qc "CREATE DATABASE $NAME"
    export UPDRAFT__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$NAME"
  fi
  "$BIN" db migrate >/dev/null

  # 1. dags test
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$BIN" dags test bench --dags "$WORK/dags" > "$WORK/test.out"
  read -r WALL RSS USR SYS < "$WORK/time"
  row "updraft dags test ($TASKS tasks)" "$DB" "$WALL" "$(echo "$TASKS / $WALL" | bc -l)" "$(echo "$RSS / 1024" | bc -l)" "$(echo "($USR + $SYS) * 1000000 / $TASKS" | bc -l)"

  # 2. scheduler + trigger: time from trigger to success, scheduler CPU and RSS from /proc.
  "$BIN" scheduler --dags "$WORK/dags" > "$WORK/scheduler.log" 2>&1 &
  PID=$!
  until "$BIN" dags trigger bench --run-id warm >/dev/null 2>&1; do sleep 0.2; done
  until "$BIN" dags list-runs bench | grep -q "^warm	success"; do sleep 0.2; done
  CPU0=$(awk '{print $14 + $15}' /proc/$PID/stat)
  START=$(date +%s.%N)
  "$BIN" dags trigger bench --run-id timed >/dev/null
  until "$BIN" dags list-runs bench | grep -q "^timed	success"; do sleep 0.05; done
  END=$(date +%s.%N)
  CPU1=$(awk '{print $14 + $15}' /proc/$PID/stat)
  HWM=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
  kill "$PID"; wait "$PID" 2>/dev/null || true
  WALL=$(echo "$END - $START" | bc -l)
  TICKS=$(getconf CLK_TCK)
  row "scheduler: trigger → success" "$DB" "$WALL" "$(echo "$TASKS / $WALL" | bc -l)" "$(echo "$HWM / 1024" | bc -l)" "$(echo "($CPU1 - $CPU0) * 1000000 / $TICKS / $TASKS" | bc -l)"
  if [ "$DB" = postgres ]; then
    unset UPDRAFT__DATABASE__URL
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)"
  fi
done
