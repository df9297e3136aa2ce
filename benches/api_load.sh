#!/usr/bin/env bash
# Decision API load benchmark (issue 6): wrk on loopback against `POST /api/v1/ai/decisions/request`
# on the API/admin listener of a release `lexecon serve` (2 server threads, caller named by the
# trusted `x-agent-id` header, policy deploy/policies/ai.yaml). Four rows, each a fresh process with
# an empty data directory: permit and deny (`axn_delete_data`, forbidden), with the ledger on
# (default: async) and `ledger: off`. A permit appends its ledger entry and waits for its hash (the
# answer carries `ledger_entry_hash`) and carries a capability token; a deny records without waiting.
# Prints a Markdown table: req/s, latency (wrk's, closed loop), and the server's CPU per request.
#
# Usage: benches/api_load.sh   Environment: API_DURATION (10 s per row), API_CONNECTIONS (32),
# API_WRK_THREADS (1), API_PORT (19781; +1 for the proxy listener), LOAD_BIN (a prebuilt lexecon;
# default: build one). Needs wrk (installed from Debian when missing). Loopback only; everything
# started here is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${API_DURATION:-10}
CONNS=${API_CONNECTIONS:-32}
WRK_THREADS=${API_WRK_THREADS:-1}
PORT=${API_PORT:-19781}
log() { printf '[api-load %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=$(mktemp -d /tmp/lexecon-api-load.XXXXXX)
PID=
cleanup() {
    [[ -n $PID ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v wrk >/dev/null; then
    as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null ||
        die "cannot install wrk"
fi
if [[ -n ${LOAD_BIN:-} ]]; then
    BIN=$LOAD_BIN
else
    log "building lexecon (release)"
    (cd "$ROOT" && cargo build --release --quiet -p lexecon --bin lexecon)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/lexecon
fi
[[ -x $BIN ]] || die "no binary at $BIN"

config() { # name ledger-line
    mkdir -p "$WORK/$1"
    cat >"$WORK/$1/lexecon.yaml" <<YAML
node_id: bench
data_dir: $WORK/$1/data
listeners:
  proxy: 127.0.0.1:$((PORT + 1))
  admin: 127.0.0.1:$PORT
server: {threads: 2}
identity: {trusted_actor_header: x-agent-id}
policies: {ai: $ROOT/deploy/policies/ai.yaml}
telemetry: {log_format: text}
$2
YAML
}

run_row() { # label config action expected-decision
    config "$2" "$([[ $2 == off ]] && echo 'ledger: off' || true)"
    RUST_LOG=warn "$BIN" serve --config "$WORK/$2/lexecon.yaml" >"$WORK/$2/log" 2>&1 &
    PID=$!
    local i url=http://127.0.0.1:$PORT/api/v1/ai/decisions/request
    for ((i = 0; i < 200; i++)); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.05; done
    local answer
    answer=$(curl -s -X POST -H 'content-type: application/json' -H 'x-agent-id: act_ai_agent:bench' \
        --data "{\"actor\":\"act_ai_agent:bench\",\"action\":\"$3\",\"context\":{\"purpose\":\"bench\"}}" "$url")
    grep -q "\"decision\":\"$4\"" <<<"$answer" || die "$1: expected a $4, got: $answer"
    API_ACTION=$3 wrk -t"$WRK_THREADS" -c"$CONNS" -d2s -s "$ROOT/benches/api/permit.lua" "$url" >/dev/null
    local c0 c1 out
    c0=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    out=$(API_ACTION=$3 wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}"s --timeout 5s -s "$ROOT/benches/api/permit.lua" "$url" | grep '^RESULT') ||
        die "$1: wrk printed no RESULT"
    c1=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    local v
    v() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$out"; }
    (($(v errors) + $(v status_errors) == 0)) || die "$1: errors or non-2xx answers: $out"
    printf '| %s | %.0f | %.2f ms | %.2f ms | %.2f ms | %s |\n' "$1" "$(v rps)" \
        "$(awk -v x="$(v p50)" 'BEGIN { print x / 1000 }')" "$(awk -v x="$(v p90)" 'BEGIN { print x / 1000 }')" \
        "$(awk -v x="$(v p99)" 'BEGIN { print x / 1000 }')" \
        "$(awk -v d=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$(v requests)" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')" >>"$WORK/rows"
    log "$1: $out"
}

BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run_row "permit, ledger on (async)" on axn_read_data permit
run_row "deny, ledger on (async)" on axn_delete_data deny
run_row "permit, ledger off" off axn_read_data permit
run_row "deny, ledger off" off axn_delete_data deny
echo
echo "Run $START – $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "$(nproc) CPUs, load average before $BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg);" \
    "wrk -t$WRK_THREADS -c$CONNS ${DURATION}s per row after 2 s warm-up."
echo
echo "| scenario | requests/s | p50 | p90 | p99 | server CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|"
cat "$WORK/rows"
