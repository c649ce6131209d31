#!/usr/bin/env bash
# Contract test: schemathesis (every check) against /openapi.json of a running
# debug binary on the embedded default, once per role: anonymous, USER,
# MANAGER, ADMIN. Fails on any failure or 5xx.
#
# Not yet run by .ci/run: on 2026-12-02 it still reports 11 failures
# (ST203 missing required header accepted x9, ST201, ST202) and network
# errors; issue 11 stays open until it is green and wired in.
#
# Usage: bash .ci/schemathesis.sh           (builds the debug binary first)
#   MAX_EXAMPLES=30 (per operation and phase), SCHEMATHESIS_WORKERS=2,
#   ST_VENV=.venv-schemathesis (created with pip on first use),
#   BIN=target/debug/loan-tracker (skip the build when set).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
WORKERS="${SCHEMATHESIS_WORKERS:-2}"
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
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
  rm -rf "$work"
  true
}
trap cleanup EXIT

# Embedded default in a fresh directory (out of reach of any .env here);
# rate limits high so the generated traffic is not answered 429.
run_env=(env -u DATABASE_URL -u NATS_URL -u SMTP_URL -u JWT_SECRET
  HTTP_ADDR="127.0.0.1:$port" DATA_DIR="$work/data"
  RATE_LIMIT_PER_MIN=10000000 LOGIN_RATE_LIMIT_PER_MIN=10000000 RUST_LOG=warn)
admin_password="schemathesis admin passphrase"
(cd "$work" && "${run_env[@]}" "$BIN" admin create --email st-admin@example.com --password "$admin_password" >/dev/null)
(cd "$work" && exec "${run_env[@]}" "$BIN" serve > "$work/server.log" 2>&1) &
app_pid=$!
for _ in $(seq 1 200); do curl -fs "$base/health" >/dev/null && break; sleep 0.1; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS -X "${3:-POST}" "$base/api/v1/$1" -H 'content-type: application/json' ${4:+-H "authorization: Bearer $4"} -d "$2"; }
login() { post auth/login "{\"email\":\"$1\",\"password\":\"$2\"}" | json "['access_token']"; }

user_password="schemathesis user passphrase"
post auth/register "{\"email\":\"st-user@example.com\",\"username\":\"st-user\",\"password\":\"$user_password\"}" >/dev/null
manager_id=$(post auth/register "{\"email\":\"st-manager@example.com\",\"username\":\"st-manager\",\"password\":\"$user_password\"}" | json "['user']['id']")
admin_token=$(login st-admin@example.com "$admin_password")
post "users/$manager_id/role" '{"role":"MANAGER"}' PATCH "$admin_token" >/dev/null

failed=0
for role in anonymous USER MANAGER ADMIN; do
  auth=()
  case "$role" in
    USER) auth=(-H "Authorization: Bearer $(login st-user@example.com "$user_password")") ;;
    MANAGER) auth=(-H "Authorization: Bearer $(login st-manager@example.com "$user_password")") ;;
    ADMIN) auth=(-H "Authorization: Bearer $(login st-admin@example.com "$admin_password")") ;;
  esac
  echo "--- schemathesis as $role"
  # Every check. The stateful phase is left out: it follows response links
  # the document does not declare, and as ADMIN it would deactivate and
  # demote the very accounts whose tokens the later roles use.
  if ! SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/.ci" "$ST_VENV/bin/schemathesis" --no-color --config-file .ci/schemathesis.toml run "$base/openapi.json" \
      --checks all --phases examples,coverage,fuzzing \
      --max-examples "$MAX_EXAMPLES" --workers "$WORKERS" --seed 11 \
      --request-timeout 30 --generation-database none --report-dir "$work/report" "${auth[@]}"; then
    failed=1
  fi
done
if grep -q "panicked" "$work/server.log"; then
  echo "--- the server panicked:"; grep -B2 -A10 "panicked" "$work/server.log" | head -60; failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "--- server log (last 80 lines)"; tail -80 "$work/server.log"
  exit 1
fi
echo "schemathesis: 0 failures for anonymous, USER, MANAGER, ADMIN"
