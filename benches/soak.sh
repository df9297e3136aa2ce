#!/usr/bin/env bash
# Soak (issue 18): `lexecon serve` (the built-in demo, with its embedded upstream) under steady mixed
# traffic for $SOAK_DURATION seconds (default 600) — MCP permit, deny and escalate, orders, FHIR reads —
# with a full reload (SIGHUP) every $SOAK_RELOAD_EVERY seconds; RSS, open descriptors and threads
# sampled every 10 s. Prints start/end/max and fails if an answer is unexpected or RSS, descriptors or
# threads grow beyond their bounds (benches/soak.py says which).
#
# The RSS bound is derived from the demo's caches, not fixed: growth after warm-up may be at most
#   sum over the bounded maps (decision cache, token reuse, approvals, consent cache, rate limiters) of
#   min(capacity, distinct keys this run sends) x an entry-size estimate, + 16 MiB slack
# (allocator, per-reload rebuilds, SQLite page cache, ledger buffers). soak.py counts the keys by
# replaying the workload it is set to send and prints the bound and its terms before starting.
#
# Usage: benches/soak.sh
# Environment: SOAK_DURATION (600), SOAK_RATE (40 req/s per connection), SOAK_CONNECTIONS (4),
# SOAK_RELOAD_EVERY (3), SOAK_RSS_GROWTH_MB (unset: the derived bound), LOAD_BIN=/path/to/lexecon. The demo listens on
# 127.0.0.1:8080 (proxy), :9901 (admin) and its embedded upstream; everything is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -n ${LOAD_BIN:-} ]]; then
    BIN=$LOAD_BIN
else
    echo "[soak] building lexecon (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet -p lexecon --bin lexecon)
    BIN=$TARGET_DIR/release/lexecon
fi
WORK=$(mktemp -d /tmp/lexecon-soak.XXXXXX)
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$WORK" && RUST_LOG=warn exec "$BIN" serve >"$WORK/lexecon.log" 2>&1) &
PID=$!
for _ in $(seq 1 200); do
    curl -s -o /dev/null --max-time 1 http://127.0.0.1:9901/health && break
    sleep 0.05
done
curl -s -o /dev/null --max-time 1 http://127.0.0.1:9901/health || { tail -20 "$WORK/lexecon.log"; exit 1; }
echo "[soak] lexecon pid $PID, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
python3 "$ROOT/benches/soak.py" --pid "$PID" --duration "${SOAK_DURATION:-600}" \
    --rate "${SOAK_RATE:-40}" --connections "${SOAK_CONNECTIONS:-4}" \
    --reload-every "${SOAK_RELOAD_EVERY:-3}" \
    ${SOAK_RSS_GROWTH_MB:+--max-rss-growth-mb "$SOAK_RSS_GROWTH_MB"} || status=$?
# The ledger written under soak verifies.
kill -TERM "$PID" && wait "$PID" || true
PID=
"$BIN" ledger verify "$WORK/lexecon-data/ledger" | tail -2 || status=1
exit $status
