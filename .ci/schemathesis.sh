#!/usr/bin/env bash
# Contract check: schemathesis (every check) against /openapi.json of a
# running debug binary on the embedded default, once per role: anonymous,
# USER, MANAGER, ADMIN. Fails on any failure, error (a refused or dropped
# connection, a timeout) or 5xx, and on a panic in the server log.
# .ci/run runs it after the browser step, under a time limit.
#
# Where the defaults of a check are narrowed, .ci/schemathesis.toml says why
# (tied to a SPEC rule); .ci/schemathesis_hooks.py makes each valid
# Idempotency-Key unique.
#
# Usage: bash .ci/schemathesis.sh           (builds the debug binary first)
#   MAX_EXAMPLES=40 (per operation and phase), SEED=11,
#   SCHEMATHESIS_WORKERS=1 (more threads hardly help under the GIL, and
#   Python 3.11's ast module is not thread-safe: hypothesis then fails now
#   and then with "AST constructor recursion depth mismatch"),
#   ROLE_TIMEOUT_SECS=240 (one role's run at most),
#   ST_VENV=.venv-schemathesis (created with pip on first use),
#   BIN=target/debug/loan-tracker (skip the build when set).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${MAX_EXAMPLES:-40}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
ROLE_TIMEOUT_SECS="${ROLE_TIMEOUT_SECS:-240}"
SEED="${SEED:-11}"
ST_VENV="${ST_VENV:-.venv-schemathesis}"
# schemathesis 4.x: the CLI and config keys used below.
ST_VERSION="${ST_VERSION:-4.32.5}"

if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
if [ -z "${BIN:-}" ]; then
  cargo build --bin loan-tracker
  target_dir="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
  BIN="$target_dir/debug/loan-tracker"
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
work=$(mktemp -d)
app_pid=""
cleanup() {
  if [ -n "$app_pid" ]; then
    kill "$app_pid" 2>/dev/null || true
    # Shutdown finishes in-flight requests first; past 10 s it is killed.
    for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  true
}
trap cleanup EXIT
# A time limit (TERM) or ^C still stops the server and removes $work.
trap 'exit 143' TERM
trap 'exit 130' INT

# Embedded default in a fresh directory (out of reach of any .env here);
# rate limits high so the generated traffic is not answered 429.
run_env=(env -u DATABASE_URL -u NATS_URL -u SMTP_URL -u JWT_SECRET
  HTTP_ADDR="127.0.0.1:$port" DATA_DIR="$work/data"
  RATE_LIMIT_PER_MIN=10000000 LOGIN_RATE_LIMIT_PER_MIN=10000000 RUST_LOG=warn)
admin_password="schemathesis admin passphrase"
(cd "$work" && "${run_env[@]}" "$BIN" admin create --email st-admin@example.com --password "$admin_password" >/dev/null)
(cd "$work" && exec "${run_env[@]}" "$BIN" serve > "$work/server.log" 2>&1) &
app_pid=$!
up=0
for _ in $(seq 1 200); do
  curl -fs --max-time 2 "$base/health" >/dev/null && { up=1; break; }
  sleep 0.1
done
if [ "$up" -ne 1 ]; then
  echo "--- the server did not answer /health within 20 s:"; cat "$work/server.log"; exit 1
fi

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS --max-time 30 -X "${3:-POST}" "$base/api/v1/$1" -H 'content-type: application/json' ${4:+-H "authorization: Bearer $4"} -d "$2"; }
login() { post auth/login "{\"email\":\"$1\",\"password\":\"$2\"}" | json "['access_token']"; }

user_password="schemathesis user passphrase"
post auth/register "{\"email\":\"st-user@example.com\",\"username\":\"st-user\",\"password\":\"$user_password\"}" >/dev/null
manager_id=$(post auth/register "{\"email\":\"st-manager@example.com\",\"username\":\"st-manager\",\"password\":\"$user_password\"}" | json "['user']['id']")
admin_token=$(login st-admin@example.com "$admin_password")
post "users/$manager_id/role" '{"role":"MANAGER"}' PATCH "$admin_token" >/dev/null

failed=0
summary=()
for role in anonymous USER MANAGER ADMIN; do
  auth=()
  case "$role" in
    USER) auth=(-H "Authorization: Bearer $(login st-user@example.com "$user_password")") ;;
    MANAGER) auth=(-H "Authorization: Bearer $(login st-manager@example.com "$user_password")") ;;
    ADMIN) auth=(-H "Authorization: Bearer $(login st-admin@example.com "$admin_password")") ;;
  esac
  echo "--- schemathesis as $role"
  # In the foreground process group, so a time limit around this whole
  # script reaches schemathesis too. Every check. The stateful phase is left out: it follows response links
  # the document does not declare, and as ADMIN it would deactivate and
  # demote the very accounts whose tokens the later roles use.
  started=$(date +%s)
  if ! SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/.ci" \
    timeout --foreground -k 10 "$ROLE_TIMEOUT_SECS" "$ST_VENV/bin/schemathesis" --no-color --config-file .ci/schemathesis.toml run "$base/openapi.json" \
      --checks all --phases examples,coverage,fuzzing \
      --max-examples "$MAX_EXAMPLES" --workers "$WORKERS" --seed "$SEED" \
      --request-timeout 30 --generation-database none --report-dir "$work/report" "${auth[@]}"; then
    failed=1
    summary+=("$role: FAILED ($(( $(date +%s) - started ))s)")
  else
    summary+=("$role: 0 failures ($(( $(date +%s) - started ))s)")
  fi
done
echo "--- schemathesis per role"; printf '  %s\n' "${summary[@]}"
if grep -q "panicked" "$work/server.log"; then
  echo "--- the server panicked:"; grep -B2 -A10 "panicked" "$work/server.log" | head -60; failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "--- server log (last 80 lines)"; tail -80 "$work/server.log"
  exit 1
fi
echo "schemathesis: 0 failures for anonymous, USER, MANAGER, ADMIN"
