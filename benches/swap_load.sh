#!/usr/bin/env bash
# Control-plane swap benchmark (issue 16): the proxy's latency at a fixed rate while its bundle is
# swapped every 100 ms, against the same rate with no swaps, in one run.
#
# A sidecar (the load benchmark's full enforcement configuration: EdDSA JWT, REST classify, decide,
# ledger async, capability token) gets its configuration as a signed bundle pushed to its admin
# listener. `loadgen` (benches/loadgen, open loop, corrected for coordinated omission) sends the
# small GET at $SWAP_RATE req/s over $SWAP_CONNECTIONS connections. Rows alternate: quiet, swapping,
# quiet, swapping ($SWAP_ROUNDS pairs); while a "swapping" row runs, a loop PUTs the same bundle
# (allow_rollback, so it is applied again each time: verify, unpack, compile, build, swap, persist)
# every $SWAP_EVERY seconds with curl. The swap count and the mean time of a push are printed.
#
# Usage: benches/swap_load.sh
# Environment: SWAP_RATE (2000), SWAP_DURATION (20), SWAP_WARMUP (2), SWAP_CONNECTIONS (16),
# SWAP_EVERY (0.1), SWAP_ROUNDS (2), SWAP_BASE_PORT (18700: upstream, +1 proxy, +2 admin),
# LOAD_BIN=/path/to/lexecon. Everything started here is stopped on exit; only loopback is used.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/load
RATE=${SWAP_RATE:-2000}
DURATION=${SWAP_DURATION:-20}
WARMUP=${SWAP_WARMUP:-2}
CONNS=${SWAP_CONNECTIONS:-16}
EVERY=${SWAP_EVERY:-0.1}
ROUNDS=${SWAP_ROUNDS:-2}
BASE_PORT=${SWAP_BASE_PORT:-18700}
UP_PORT=$BASE_PORT
PROXY_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))

log() { printf '[swap %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

WORK=$(mktemp -d /tmp/lexecon-swap.XXXXXX)
declare -a STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

THREADS=1
# Tools, builds, the identity provider's key, JWKS and token, nginx: as benches/load.sh.
# shellcheck source=load/common.sh
source "$HERE/common.sh"
mkdir -p "$WORK/src/policies"
cp "$WORK/idp/jwks.json" "$WORK/src/jwks.json"

# The bundle: the load benchmark's enforcement configuration (its node-local settings are ignored
# by the sidecar), the JWKS and the policy, signed with a control-plane key.
sed -e "s|@DATA_DIR@|data|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" \
    -e "s|@THREADS@|1|g" -e "s|@UPSTREAM_PORT@|$UP_PORT|g" -e "s|@JWKS@|jwks.json|g" \
    -e "s|@MODE@|enforce|g" -e "s|@DURABILITY@|async|g" -e "s|@POLICY@|policies/ai.yaml|g" \
    "$HERE/lexecon.yaml.in" | grep -v '^\(node_id\|data_dir\|telemetry\):' \
    | sed '/^listeners:/,/^  admin:/d; /^server:/,/^  threads:/d' >"$WORK/src/config.yaml"
cp "$HERE/policies/ai.yaml" "$WORK/src/policies/ai.yaml"
"$BIN" bundle keygen "$WORK/cp.pem" >/dev/null
"$BIN" bundle build "$WORK/src" -o "$WORK/b.tar.gz" --revision 1 --allow-rollback >/dev/null
"$BIN" bundle sign "$WORK/b.tar.gz" --key "$WORK/cp.pem" >/dev/null
"$BIN" bundle verify "$WORK/b.tar.gz" --trusted "$WORK/cp.pub" >&2 || die "the bundle does not verify"

mkdir -p "$WORK/node"
cat >"$WORK/node/lexecon.yaml" <<EOF
node_id: swap-bench
data_dir: data
listeners: {proxy: "127.0.0.1:$PROXY_PORT", admin: "127.0.0.1:$ADMIN_PORT"}
server: {threads: 1}
control_plane: {trusted_keys: ["$WORK/cp.pub"], push_token_max_ttl: 1h}
EOF

start_nginx

(cd "$WORK/node" && RUST_LOG=warn exec "$BIN" serve --config lexecon.yaml >lexecon.log 2>&1) &
STARTED+=($!)
wait_http "http://127.0.0.1:$ADMIN_PORT/admin/v1/status" 20 || die "lexecon did not start"

# One push token for the whole run (the sidecar allows push_token_max_ttl: 1h), and the first push.
PUSH_TOKEN=$("$BIN" bundle token --key "$WORK/cp.pem" --ttl 1h)
code=$(curl -s -o "$WORK/first-push.json" -w '%{http_code}' -X PUT --data-binary "@$WORK/b.tar.gz" \
    -H "Authorization: Bearer $PUSH_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/bundle")
[[ $code == 200 ]] || die "the first push answered $code: $(cat "$WORK/first-push.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PROXY_PORT/v1/files/f1")
[[ $code == 200 ]] || die "GET answered $code, expected 200"

swapper() { # writes the number of pushes and their total seconds to $1 when stopped
    local n=0 total=0 t0 t1 code
    trap 'echo "$n $total" >"$1"; exit 0' TERM
    while true; do
        t0=$(date +%s.%N)
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$WORK/b.tar.gz" \
            -H "Authorization: Bearer $PUSH_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/bundle")
        t1=$(date +%s.%N)
        [[ $code == 200 ]] || { echo "push answered $code" >&2; }
        n=$((n + 1))
        total=$(awk -v a="$total" -v b="$t0" -v c="$t1" 'BEGIN { printf "%.6f", a + c - b }')
        sleep "$EVERY"
    done
}

declare -a ROWS=()
measure() { # label swapping(0|1)
    local out line pid stats swaps=- mean=-
    if [[ $2 == 1 ]]; then
        swapper "$WORK/swaps" &
        pid=$!
    fi
    out=$(LOAD_TOKEN=$TOKEN "$LOADGEN" --target "127.0.0.1:$PROXY_PORT" --workload get --rate "$RATE" \
        --connections "$CONNS" --warmup "${WARMUP}s" --duration "${DURATION}s" --timeout 5s 2>&1) ||
        die "loadgen failed: $out"
    if [[ $2 == 1 ]]; then
        kill -TERM "$pid"
        wait "$pid" || true
        read -r swaps total <"$WORK/swaps"
        mean=$(awk -v t="$total" -v n="$swaps" 'BEGIN { printf "%.1f", 1000 * t / n }')
    fi
    line=$(grep '^RESULT' <<<"$out") || die "no RESULT line: $out"
    (($(field errors "$line") + $(field status_errors "$line") == 0)) || die "errors under load: $line"
    ROWS+=("| $1 | $(field rps "$line") | $(field p50 "$line") | $(field p90 "$line") | $(field p99 "$line") | $(field p999 "$line") | $swaps | $mean |")
    log "$1: p50 $(field p50 "$line") µs, p99 $(field p99 "$line") µs, swaps $swaps (mean push $mean ms)"
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((round = 1; round <= ROUNDS; round++)); do
    measure "quiet ($round)" 0
    measure "swap every ${EVERY}s ($round)" 1
done
echo
echo "Swap under load, $START, $(nproc) CPUs, GET small at $RATE req/s, $CONNS connections, ${DURATION}s per row (loadavg now $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| row | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | swaps | mean push ms |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
