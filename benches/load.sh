#!/usr/bin/env bash
# Proxy load benchmark (issues 4 and 5): wrk on loopback against
#   direct         nginx (the upstream) without Lexecon
#   passthrough    lexecon, `mode: passthrough` (forwards untouched: the baseline)
#   enforce-async  lexecon, full enforcement: EdDSA JWT (verified, cached) + REST classify + decide +
#                  ledger `durability: async` + capability token (`mode: reuse`)
#   enforce-sync   the same with ledger `durability: sync` (each permit waits for fdatasync)
# on a small GET (/v1/files/<id>, 1,000 ids), a 1 KiB JSON POST (/v1/records) and an MCP tools/call
# (POST /mcp, JSON-RPC, JWT; the traffic an agent sidecar sees). Phase 3 adds latency rows at a fixed
# $LOAD_LOW_RATE (1,000) req/s for GET and MCP: direct, passthrough, enforce-async, each for
# $LOAD_LOW_DURATION (20) s, so that their p99 rests on the slowest 200 of 20,000 requests rather
# than the slowest 60 of 6,000 (the row moved by hundreds of µs between runs of one binary).
#
# Phase 1 (max load): wrk -t1 -c$LOAD_CONNECTIONS, closed loop, $LOAD_DURATION s per row after a
# $LOAD_WARMUP s warm-up. Phase 2 (latency at half load): `loadgen` (benches/loadgen, built here),
# an open-loop constant-rate generator in the manner of wrk2: $LOAD_CONNECTIONS keep-alive
# connections share one schedule at a fixed total rate, half of enforce-async's max for that
# workload; direct, passthrough and enforce-async run at that same rate (enforce-sync at half of
# its own max when that is lower). Each row runs $LOAD_WARMUP s (not recorded) then
# $LOAD_DURATION s at the rate. Latency is corrected for coordinated omission: from each request's
# scheduled send time to the end of its response. "send lag" is how late loadgen itself sent
# (scheduled time to write) the requests whose connection was free before their scheduled time:
# it is part of that latency, and a high value means loadgen was short of CPU (it shares the
# 2 cores with the proxy and nginx). "behind" (log only) counts requests sent late because their
# connection still waited for the previous response: the target's queueing, charged to it.
# The latency tables give the lexecon process's CPU per request at their fixed rate (warm-up
# included, at the same rate), and the summary the CPU enforcement adds at max load and at half load.
# The max-load table also gives the lexecon process's CPU time (utime + stime from /proc) per request,
# its context switches per request (voluntary / involuntary, summed over its threads from
# /proc/<pid>/task/*/status) and, with LOAD_SYSCALLS=1, its syscalls per request (`perf stat -e
# raw_syscalls:sys_enter -p <pid>` attached for the row; the tracepoint costs every syscall a little,
# so the CPU column of such a run reads slightly higher — compare runs made the same way).
#
# Usage: benches/load.sh            (from anywhere; needs root or sudo only to install wrk/nginx)
# Environment: LOAD_DURATION (10), LOAD_LOW_DURATION (20), LOAD_WARMUP (2), LOAD_CONNECTIONS (32), LOAD_ROUNDS (2: phase 1
# runs every target this often, interleaved, and keeps each row's best), LOAD_THREADS (1, the
# proxy's worker threads), LOAD_BASE_PORT (18600: upstream, +1 proxy, +2 admin), LOAD_KEEP=1 keeps
# the work directory, LOAD_BIN=/path/to/lexecon uses that binary instead of building one (loadgen
# is always built: `cargo build --release -p lexecon-loadgen`). Everything started here is stopped
# on exit (trap); only loopback is used.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/benches/load
DURATION=${LOAD_DURATION:-10}
WARMUP=${LOAD_WARMUP:-2}
CONNS=${LOAD_CONNECTIONS:-32}
ROUNDS=${LOAD_ROUNDS:-2}
THREADS=${LOAD_THREADS:-1}
BASE_PORT=${LOAD_BASE_PORT:-18600}
UP_PORT=$BASE_PORT
PROXY_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))

log() { printf '[load %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }
us() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }
label() { case $1 in get) echo "GET small" ;; post) echo "POST 1 KiB JSON" ;; mcp) echo "MCP tools/call" ;; esac; }

WORK=$(mktemp -d /tmp/lexecon-load.XXXXXX)
declare -a STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${LOAD_KEEP:-0} == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools, builds, identity, processes: shared with benches/profile.sh.
# shellcheck source=load/common.sh
source "$HERE/common.sh"

# One request of each workload must be answered as expected before anything is measured.
check_target() { # target
    local port code headers
    port=$(port_of "$1")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$port/v1/files/f1")
    [[ $code == 200 ]] || die "$1: GET answered $code, expected 200"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data '{"table":"events","rows":25,"purpose":"sync"}' \
        "http://127.0.0.1:$port/v1/records")
    [[ $code == 201 ]] || die "$1: POST answered $code, expected 201"
    code=$(curl -s -o "$WORK/mcp-answer" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"q"}}}' \
        "http://127.0.0.1:$port/mcp")
    [[ $code == 200 ]] && grep -q '"result"' "$WORK/mcp-answer" ||
        die "$1: MCP tools/call answered $code: $(head -c 300 "$WORK/mcp-answer")"
    if [[ $1 == enforce-* ]]; then
        headers=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$port/v1/files/f1")
        grep -qi '^x-lexecon-decision-id:' <<<"$headers" || die "$1: permitted GET has no decision id"
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/files/f1")
        [[ $code == 401 ]] || die "$1: GET without a token answered $code, expected 401"
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' --data '{"table":"events","rows":500,"purpose":"sync"}' \
            "http://127.0.0.1:$port/v1/records")
        [[ $code == 403 ]] || die "$1: a 500-row batch answered $code, expected 403 (escalate)"
        # A tool the policy forbids is refused as a tool error (JSON-RPC error), not forwarded.
        curl -s -o "$WORK/mcp-answer" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
            -H 'Accept: application/json, text/event-stream' \
            --data '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_docs","arguments":{}}}' \
            "http://127.0.0.1:$port/mcp"
        grep -q '"result"' "$WORK/mcp-answer" && grep -q '3 documents match' "$WORK/mcp-answer" &&
            die "$1: a forbidden tool call reached the upstream"
        grep -qi 'delete\|forbid\|denied\|deny' "$WORK/mcp-answer" ||
            die "$1: a forbidden tool call was not refused: $(head -c 300 "$WORK/mcp-answer")"
    fi
}

# field name line: the value of `name=` in a RESULT line.
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# wrk_run target kind connections seconds -> prints "rps p50 p90 p99 p999 requests"
wrk_run() {
    local port out line
    port=$(port_of "$1")
    out=$(LOAD_KIND=$2 LOAD_TOKEN=$TOKEN \
        wrk -t1 -c"$3" -d"$4"s --timeout 5s -s "$HERE/wrk.lua" "http://127.0.0.1:$port" 2>&1) ||
        die "wrk failed: $out"
    line=$(grep '^RESULT' <<<"$out") || die "wrk printed no RESULT line: $out"
    local rps req p50 p90 p99 p999 errors status
    rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")
    req=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
    p50=$(sed -n 's/.* p50=\([0-9.]*\).*/\1/p' <<<"$line")
    p90=$(sed -n 's/.* p90=\([0-9.]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.* p99=\([0-9.]*\).*/\1/p' <<<"$line")
    p999=$(sed -n 's/.* p999=\([0-9.]*\).*/\1/p' <<<"$line")
    errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
    status=$(sed -n 's/.* status_errors=\([0-9]*\).*/\1/p' <<<"$line")
    if ((errors + status > 0)); then
        die "$1 $2: $errors socket errors and $status answers >= 400 out of $req requests: $out"
    fi
    echo "$rps $p50 $p90 $p99 $p999 $req"
}

declare -A MAX_RPS MAX_P50 MAX_P99 MAX_CPU MAX_CS MAX_SC ALL_RPS HALF HALF_RATE

measure_max() { # target kind
    wrk_run "$1" "$2" "$CONNS" "$WARMUP" >/dev/null
    local r cpu0 cpu1 cpu="–" cs0 cs1 cs="–" sc="–" perf_pid=""
    cpu0=$(proc_cpu_ticks)
    cs0=$(proc_ctx_switches)
    if [[ ${LOAD_SYSCALLS:-0} == 1 && -n $LEXECON_PID ]] && command -v perf >/dev/null; then
        perf stat -e raw_syscalls:sys_enter -x, -o "$WORK/syscalls.csv" -p "$LEXECON_PID" 2>/dev/null &
        perf_pid=$!
    fi
    read -r -a r <<<"$(wrk_run "$1" "$2" "$CONNS" "$DURATION")"
    cpu1=$(proc_cpu_ticks)
    cs1=$(proc_ctx_switches)
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        sc=$(awk -F, -v n="${r[5]}" '/raw_syscalls:sys_enter/ && $1 ~ /^[0-9]+$/ { printf "%.2f", $1 / n }' "$WORK/syscalls.csv" 2>/dev/null)
        [[ -n $sc ]] || sc="–"
    fi
    if [[ -n $cpu0 && -n $cpu1 ]]; then
        cpu=$(awk -v d=$((cpu1 - cpu0)) -v t="$(getconf CLK_TCK)" -v n="${r[5]}" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')
    fi
    if [[ -n $cs0 && -n $cs1 ]]; then
        cs=$(awk -v a="$cs0" -v b="$cs1" -v n="${r[5]}" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f / %.3f", (y[1] - x[1]) / n, (y[2] - x[2]) / n }')
    fi
    log "max  $1 $2 (round $round): ${r[0]} req/s, p50 ${r[1]} µs, p99 ${r[3]} µs (${r[5]} requests), lexecon CPU $cpu µs/request, context switches $cs, syscalls $sc per request"
    ALL_RPS[$1,$2]="${ALL_RPS[$1,$2]:-}${ALL_RPS[$1,$2]:+ / }$(us "${r[0]}")"
    # Other load on the machine only ever lowers a row: keep each row's best round.
    if [[ -z ${MAX_RPS[$1,$2]:-} ]] || awk -v a="${r[0]}" -v b="${MAX_RPS[$1,$2]}" 'BEGIN { exit !(a > b) }'; then
        MAX_RPS[$1,$2]=${r[0]}
        MAX_P50[$1,$2]=${r[1]}
        MAX_P99[$1,$2]=${r[3]}
        MAX_CPU[$1,$2]=$cpu
        MAX_CS[$1,$2]=$cs
        MAX_SC[$1,$2]=$sc
    fi
}

# "voluntary involuntary" context switches of every thread of the running lexecon process so far,
# empty for `direct` (threads that ended meanwhile are not counted; the proxy's do not end).
proc_ctx_switches() {
    [[ -n $LEXECON_PID && -d /proc/$LEXECON_PID/task ]] || return 0
    cat /proc/"$LEXECON_PID"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { i += $2 } END { print v, i }'
}

# utime + stime (clock ticks) of the running lexecon process, empty for `direct`.
proc_cpu_ticks() {
    [[ -n $LEXECON_PID && -r /proc/$LEXECON_PID/stat ]] || return 0
    awk '{ print $14 + $15 }' "/proc/$LEXECON_PID/stat"
}

# measure_half target kind rate [seconds]: $WARMUP s unrecorded, then `seconds` ($DURATION) at
# `rate` (open loop).
measure_half() {
    local target=$1 kind=$2 rate=$3 seconds=${4:-$DURATION} port out line req errors status missed scheduled cpu0 cpu1 cpu="–"
    port=$(port_of "$target")
    cpu0=$(proc_cpu_ticks)
    out=$(LOAD_TOKEN=$TOKEN "$LOADGEN" --target "127.0.0.1:$port" --workload "$kind" --rate "$rate" \
        --connections "$CONNS" --warmup "${WARMUP}s" --duration "${seconds}s" --timeout 5s 2>&1) ||
        die "loadgen $target $kind failed: $out"
    cpu1=$(proc_cpu_ticks)
    line=$(grep '^RESULT' <<<"$out") || die "loadgen printed no RESULT line: $out"
    req=$(field requests "$line")
    errors=$(field errors "$line")
    status=$(field status_errors "$line")
    missed=$(field missed "$line")
    scheduled=$(field scheduled "$line")
    if ((errors + status > 0)); then
        die "$target $kind: $errors socket errors and $status answers >= 400 ($req measured requests): $out"
    fi
    if ((missed > 0)); then
        log "warning: $target $kind: $missed of $scheduled scheduled requests were not sent in time (the target fell behind)"
    fi
    # CPU over warm-up and measurement together, at one constant rate: per request of both.
    if [[ -n $cpu0 && -n $cpu1 ]]; then
        cpu=$(awk -v d=$((cpu1 - cpu0)) -v t="$(getconf CLK_TCK)" -v n="$req" -v w="$WARMUP" -v s="$seconds" \
            'BEGIN { printf "%.1f", d / t * 1e6 / (n * (w + s) / s) }')
    fi
    HALF[$target,$kind,$rate]="$(field rps "$line") $(field p50 "$line") $(field p90 "$line") $(field p99 "$line") $(field p999 "$line") $req $(field send_lag_p99 "$line") $cpu"
    log "half $target $kind @ $rate req/s: $(field rps "$line") req/s, p50 $(field p50 "$line") µs, p99 $(field p99 "$line") µs, p99.9 $(field p999 "$line") µs, send lag p99 $(field send_lag_p99 "$line") µs, behind $(field behind "$line") of $req, lexecon CPU $cpu µs/request"
}

KINDS=(get post mcp)
# The fixed-rate rows at the rate a busy agent sidecar sees (issue 17: added p99 under 250 µs).
LOW_RATE=${LOAD_LOW_RATE:-1000}
LOW_DURATION=${LOAD_LOW_DURATION:-20}
LOW_KINDS=(get mcp)
VARIANTS=(passthrough enforce-async enforce-sync)
declare -A MODE=([passthrough]=passthrough [enforce-async]=enforce [enforce-sync]=enforce)
declare -A DURABILITY=([passthrough]=async [enforce-async]=async [enforce-sync]=sync)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "work directory $WORK; proxy threads $THREADS; $CONNS connections; ${DURATION}s per row"

start_nginx
check_target direct

# Phase 1: max load, $ROUNDS rounds over every target (each lexecon variant a fresh process with an
# empty data directory).
for ((round = 1; round <= ROUNDS; round++)); do
    for kind in "${KINDS[@]}"; do measure_max direct "$kind"; done
    for v in "${VARIANTS[@]}"; do
        rm -rf "$WORK/$v"
        start_lexecon "$v" "${MODE[$v]}" "${DURABILITY[$v]}"
        check_target "$v"
        for kind in "${KINDS[@]}"; do measure_max "$v" "$kind"; done
        stop_lexecon
        if [[ $v == enforce-* ]]; then
            # Every permitted request was recorded: the ledger verifies.
            report=$("$BIN" ledger verify "$WORK/$v/data/ledger" 2>&1) || die "ledger of $v does not verify: $report"
            log "ledger $v: $(tr '\n' ' ' <<<"$report" | cut -c1-120)"
        fi
    done
done

# Phase 2: latency at half load.
for kind in "${KINDS[@]}"; do
    HALF_RATE[$kind]=$(awk -v m="${MAX_RPS[enforce-async,$kind]}" 'BEGIN { printf "%d", m / 2 }')
    HALF_RATE[sync,$kind]=$(awk -v m="${MAX_RPS[enforce-sync,$kind]}" -v h="${HALF_RATE[$kind]}" \
        'BEGIN { s = int(m / 2); printf "%d", (s < h ? s : h) }')
done
for kind in "${KINDS[@]}"; do
    measure_half direct "$kind" "${HALF_RATE[$kind]}"
    if [[ ${HALF_RATE[sync,$kind]} != "${HALF_RATE[$kind]}" ]]; then
        measure_half direct "$kind" "${HALF_RATE[sync,$kind]}"
    fi
done
for v in "${VARIANTS[@]}"; do
    start_lexecon "$v-half" "${MODE[$v]}" "${DURABILITY[$v]}"
    for kind in "${KINDS[@]}"; do
        if [[ $v == enforce-sync ]]; then
            measure_half "$v" "$kind" "${HALF_RATE[sync,$kind]}"
        else
            measure_half "$v" "$kind" "${HALF_RATE[$kind]}"
        fi
    done
    stop_lexecon
done

# Phase 3: latency at $LOW_RATE req/s (direct, passthrough, enforce-async).
for kind in "${LOW_KINDS[@]}"; do measure_half direct "$kind" "$LOW_RATE" "$LOW_DURATION"; done
for v in passthrough enforce-async; do
    start_lexecon "$v-low" "${MODE[$v]}" "${DURABILITY[$v]}"
    for kind in "${LOW_KINDS[@]}"; do measure_half "$v" "$kind" "$LOW_RATE" "$LOW_DURATION"; done
    stop_lexecon
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Report (Markdown).

echo
echo "Run $START – $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)), load average before $LOAD_BEFORE, after $LOAD_AFTER;" \
    "proxy threads $THREADS; ${DURATION}s per row (the $LOW_RATE req/s rows ${LOW_DURATION}s) after ${WARMUP}s warm-up; max load: wrk -t1 -c$CONNS, $ROUNDS rounds;" \
    "half load: loadgen, $CONNS connections, constant rate."
echo
echo "Max load (closed loop, wrk -t1 -c$CONNS):"
echo
echo "| workload | variant | req/s (best round) | vs passthrough | p50 µs | p99 µs | lexecon CPU µs/request | context switches/request (vol / invol) | syscalls/request | req/s of each round |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for kind in "${KINDS[@]}"; do
    for t in direct "${VARIANTS[@]}"; do
        echo "| $(label "$kind") | $t | $(us "${MAX_RPS[$t,$kind]}") | $(pct "${MAX_RPS[$t,$kind]}" "${MAX_RPS[passthrough,$kind]}") | $(us "${MAX_P50[$t,$kind]}") | $(us "${MAX_P99[$t,$kind]}") | ${MAX_CPU[$t,$kind]} | ${MAX_CS[$t,$kind]} | ${MAX_SC[$t,$kind]} | ${ALL_RPS[$t,$kind]} |"
    done
done
echo
echo "Latency at half load (loadgen: open loop at a constant total rate over $CONNS keep-alive connections;" \
    "latency from each request's scheduled send time to the end of its response, corrected for coordinated omission):"
echo
echo "| workload | variant | target req/s | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | send lag p99 µs | added p99 vs direct µs | lexecon CPU µs/request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
    for t in direct "${VARIANTS[@]}"; do
        rates=${HALF_RATE[$kind]}
        [[ $t == enforce-sync ]] && rates=${HALF_RATE[sync,$kind]}
        [[ $t == direct && ${HALF_RATE[sync,$kind]} != "${HALF_RATE[$kind]}" ]] && rates="$rates ${HALF_RATE[sync,$kind]}"
        for rate in $rates; do
            read -r -a h <<<"${HALF[$t,$kind,$rate]}"
            read -r -a d <<<"${HALF[direct,$kind,$rate]}"
            added=$(awk -v a="${h[3]}" -v b="${d[3]}" 'BEGIN { printf "%+.0f", a - b }')
            [[ $t == direct ]] && added="–"
            echo "| $(label "$kind") | $t | $rate | $(us "${h[0]}") | $(us "${h[1]}") | $(us "${h[2]}") | $(us "${h[3]}") | $(us "${h[4]}") | $(us "${h[6]}") | $added | ${h[7]:-–} |"
        done
    done
done
echo
echo "Latency at $LOW_RATE req/s (loadgen, as above; goal: enforce-async adds under 250 µs of p99 over direct):"
echo
echo "| workload | variant | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | send lag p99 µs | added p99 vs direct µs | lexecon CPU µs/request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in "${LOW_KINDS[@]}"; do
    for t in direct passthrough enforce-async; do
        read -r -a h <<<"${HALF[$t,$kind,$LOW_RATE]}"
        read -r -a d <<<"${HALF[direct,$kind,$LOW_RATE]}"
        added=$(awk -v a="${h[3]}" -v b="${d[3]}" 'BEGIN { printf "%+.0f", a - b }')
        [[ $t == direct ]] && added="–"
        echo "| $(label "$kind") | $t | $(us "${h[0]}") | $(us "${h[1]}") | $(us "${h[2]}") | $(us "${h[3]}") | $(us "${h[4]}") | $(us "${h[6]}") | $added | ${h[7]:-–} |"
    done
done
echo
# Enforcement's added CPU per request over passthrough: at max load (where the proxy thread is the
# bottleneck and every µs on it also costs wake-ups of its idle peers on this shared 2-vCPU box),
# and at the half-load rate, where neither variant is saturated.
for kind in "${KINDS[@]}"; do
    read -r -a hp <<<"${HALF[passthrough,$kind,${HALF_RATE[$kind]}]}"
    read -r -a he <<<"${HALF[enforce-async,$kind,${HALF_RATE[$kind]}]}"
    echo "$(label "$kind"): enforce-async adds $(awk -v a="${MAX_CPU[enforce-async,$kind]}" -v b="${MAX_CPU[passthrough,$kind]}" 'BEGIN { printf "%+.1f", a - b }') µs of lexecon CPU per request at max load," \
        "$(awk -v a="${he[7]:-0}" -v b="${hp[7]:-0}" 'BEGIN { printf "%+.1f", a - b }') µs at ${HALF_RATE[$kind]} req/s (goal <= 8 µs)"
done
for kind in "${LOW_KINDS[@]}"; do
    read -r -a hp <<<"${HALF[passthrough,$kind,$LOW_RATE]}"
    read -r -a he <<<"${HALF[enforce-async,$kind,$LOW_RATE]}"
    echo "$(label "$kind") at $LOW_RATE req/s: enforce-async adds $(awk -v a="${he[7]:-0}" -v b="${hp[7]:-0}" 'BEGIN { printf "%+.1f", a - b }') µs of lexecon CPU per request (the ledger writer's cadence: a cost per second, not per request)"
done
echo
for kind in "${KINDS[@]}"; do
    echo "$(label "$kind"): enforce-async / passthrough = $(pct "${MAX_RPS[enforce-async,$kind]}" "${MAX_RPS[passthrough,$kind]}") (goal >= 85 %);" \
        "enforce-sync / enforce-async = $(pct "${MAX_RPS[enforce-sync,$kind]}" "${MAX_RPS[enforce-async,$kind]}");" \
        "passthrough / direct = $(pct "${MAX_RPS[passthrough,$kind]}" "${MAX_RPS[direct,$kind]}")"
done
