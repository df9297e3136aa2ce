#!/usr/bin/env bash
# Where a request's time goes (issue 17): one lexecon variant behind the load benchmark's nginx, at
# a fixed rate from `loadgen` (open loop), with per-request accounting taken from the kernel:
#   - CPU per request of each thread of the process (exact on-CPU time from
#     /proc/<pid>/task/*/schedstat) and of the whole process (utime + stime of /proc/<pid>/stat,
#     which the kernel scales to the exact runtime: the cross-check of the per-thread sum),
#   - context switches per request, voluntary and involuntary, per thread (/proc/<pid>/task/*/status),
#   - with PROFILE_STRACE=1: syscalls per request (`strace -c -f` attached for the run; strace slows
#     the process, so only its counts mean anything, not the latency of that run),
#   - with PROFILE_PERF=1: an on-CPU profile (`perf record --call-graph dwarf`; PROFILE_CALLGRAPH=fp for a
#     binary built with RUSTFLAGS="-C force-frame-pointers=yes", far cleaner stacks) of the run, its top
#     entries printed and the data kept in $WORK (PROFILE_KEEP=1 keeps $WORK).
# The latency line is loadgen's (corrected for coordinated omission).
#
# Usage: benches/profile.sh [variant] [kind] [rate] [seconds]
#   variant  passthrough | enforce-async | enforce-sync   (default enforce-async)
#   kind     get | post | mcp                              (default get; the requests of load.sh)
#   rate     requests per second                           (default 5000)
#   seconds  measured seconds after a 2 s warm-up          (default 10)
# Environment: LOAD_BIN=/path/to/lexecon (else built), LOAD_CONNECTIONS (32), LOAD_THREADS (1),
# LOAD_BASE_PORT (18640), PROFILE_PIN=1 (lexecon's threads on CPU 1, nginx and loadgen on CPU 0: the
# proxy no longer shares a vCPU with its client and upstream, as on a host with cores to spare). Only loopback is used; everything started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/load
VARIANT=${1:-enforce-async}
KIND=${2:-get}
RATE=${3:-5000}
SECONDS_MEASURED=${4:-10}
CONNS=${LOAD_CONNECTIONS:-32}
THREADS=${LOAD_THREADS:-1}
BASE_PORT=${LOAD_BASE_PORT:-18640}
UP_PORT=$BASE_PORT
PROXY_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))

log() { printf '[profile %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=$(mktemp -d /tmp/lexecon-profile.XXXXXX)
declare -a STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${PROFILE_KEEP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=load/common.sh
source "$HERE/common.sh"

case $VARIANT in
passthrough) MODE=passthrough DURABILITY=async ;;
enforce-async) MODE=enforce DURABILITY=async ;;
enforce-sync) MODE=enforce DURABILITY=sync ;;
*) die "unknown variant $VARIANT (passthrough, enforce-async, enforce-sync)" ;;
esac

# One line per thread of the process: "comm tid cpu_µs voluntary nonvoluntary".
thread_sample() {
    local task comm ticks vol nonvol
    for task in /proc/"$LEXECON_PID"/task/*; do
        comm=$(tr ' ' '_' <"$task/comm" 2>/dev/null) || continue
        # CPU time in µs: schedstat's exact on-CPU nanoseconds. utime + stime of a thread's own
        # stat file are tick samples that undercount threads running in short bursts (on this VM
        # the proxy thread's read 33 µs/request where schedstat and the process total read 60).
        if [[ -r $task/schedstat ]]; then
            ticks=$(awk '{ printf "%.0f", $1 / 1000 }' "$task/schedstat" 2>/dev/null) || continue
        else
            ticks=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1e6 / t }' "$task/stat" 2>/dev/null) || continue
        fi
        vol=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$task/status" 2>/dev/null) || continue
        nonvol=$(awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "$task/status" 2>/dev/null) || continue
        echo "$comm ${task##*/} $ticks $vol $nonvol"
    done
}

start_nginx
start_lexecon "$VARIANT" "$MODE" "$DURABILITY"
log "lexecon $VARIANT (pid $LEXECON_PID), $KIND at $RATE req/s over $CONNS connections, ${SECONDS_MEASURED}s"
PEERS_CPU=()
if [[ ${PROFILE_PIN:-0} == 1 ]]; then
    taskset -apc 1 "$LEXECON_PID" >/dev/null || die "cannot pin lexecon to CPU 1"
    for pid in $(pgrep -f "$WORK/nginx"); do taskset -apc 0 "$pid" >/dev/null || die "cannot pin nginx to CPU 0"; done
    PEERS_CPU=(taskset -c 0)
    log "pinned: lexecon on CPU 1, nginx and loadgen on CPU 0"
fi

run_loadgen() { # seconds
    LOAD_TOKEN=$TOKEN "${PEERS_CPU[@]}" "$LOADGEN" --target "127.0.0.1:$PROXY_PORT" --workload "$KIND" --rate "$RATE" \
        --connections "$CONNS" --warmup 0s --duration "${1}s" --timeout 5s 2>&1
}
run_loadgen 2 >/dev/null || die "warm-up failed"

thread_sample >"$WORK/before"
PROCESS_BEFORE=$(awk '{ print $14 + $15 }' "/proc/$LEXECON_PID/stat")
ATTACHED=
if [[ ${PROFILE_STRACE:-0} == 1 ]]; then
    strace -c -f -o "$WORK/strace" -p "$LEXECON_PID" 2>/dev/null &
    ATTACHED=$!
    sleep 0.5
elif [[ ${PROFILE_PERF:-0} == 1 ]]; then
    perf record -q -F 999 --call-graph "${PROFILE_CALLGRAPH:-dwarf,16384}" -o "$WORK/perf.data" -p "$LEXECON_PID" 2>/dev/null &
    ATTACHED=$!
    sleep 0.5
fi
OUT=$(run_loadgen "$SECONDS_MEASURED") || die "loadgen failed: $OUT"
if [[ -n $ATTACHED ]]; then
    kill -INT "$ATTACHED" 2>/dev/null || true
    wait "$ATTACHED" 2>/dev/null || true
fi
thread_sample >"$WORK/after"
PROCESS_AFTER=$(awk '{ print $14 + $15 }' "/proc/$LEXECON_PID/stat")
LINE=$(grep '^RESULT' <<<"$OUT") || die "loadgen printed no RESULT line: $OUT"
REQ=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$LINE")
echo "$LINE"

# Per thread (grouped by name): CPU µs, voluntary and involuntary switches per request.
join -1 2 -2 2 <(sort -k2,2 "$WORK/before") <(sort -k2,2 "$WORK/after") | awk -v n="$REQ" -v t=1000000 '
    { name = $2; cpu[name] += ($7 - $3); vol[name] += ($8 - $4); inv[name] += ($9 - $5); threads[name]++ }
    END {
        printf "%-24s %8s %12s %12s %12s\n", "thread (count)", "", "CPU µs/req", "vol cs/req", "invol cs/req"
        for (k in cpu) {
            tc += cpu[k]; tv += vol[k]; ti += inv[k]
            if (cpu[k] + vol[k] + inv[k] == 0) continue
            printf "%-24s %8s %12.2f %12.3f %12.3f\n", k, "(" threads[k] ")", cpu[k] / t * 1e6 / n, vol[k] / n, inv[k] / n
        }
        printf "%-24s %8s %12.2f %12.3f %12.3f\n", "TOTAL", "", tc / t * 1e6 / n, tv / n, ti / n
    }'
awk -v d=$((PROCESS_AFTER - PROCESS_BEFORE)) -v t="$(getconf CLK_TCK)" -v n="$REQ" \
    'BEGIN { printf "%-24s %8s %12.2f   (/proc/<pid>/stat, 10 ms ticks)\n", "PROCESS", "", d / t * 1e6 / n }'

if [[ ${PROFILE_STRACE:-0} == 1 ]]; then
    echo
    echo "syscalls per request (strace -c -f; $REQ requests):"
    awk -v n="$REQ" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { printf "  %-20s %8.3f\n", $NF, $4 / n; total += $4 }
        END { printf "  %-20s %8.3f\n", "total", total / n }' "$WORK/strace"
fi
if [[ ${PROFILE_PERF:-0} == 1 ]]; then
    echo
    echo "on-CPU profile, top self entries (perf report --no-children):"
    perf report -q -i "$WORK/perf.data" --no-children --sort comm,dso,symbol -g none --percent-limit 0.7 2>/dev/null |
        grep -v "^$" | cut -c1-160 | head -60 || true
fi
