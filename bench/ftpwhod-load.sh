#!/usr/bin/env bash
# Responder under load: closed-loop clients (1, 8, 32, 64), one connection
# per `list` query with numeric addresses, on scoreboards of 100, 1,000,
# 10,000 and 50,000 sessions, text and JSON; in the same run, for each
# scoreboard and client count, the C pure-ftpwho -n (Debian's) run by as
# many clients in a loop. Prints queries/s, p50 and p99 latency, busy
# answers, and the responder's peak RSS (VmHWM, reset before each cell).
# Targets: peak RSS <= 64 MiB at 50,000 sessions with 64 JSON clients;
# no busy answer with <= max_connections (64) clients; >= 2x C's queries/s
# and p99 <= C's at every client count.
# Run as root (the C tool and the scoreboard want it).
# Usage: bench/ftpwhod-load.sh [SECONDS per cell, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}

cargo build --release --quiet --bin ftpwhod --example craft-scoreboard --example query-load
bin=target/release
craft=$bin/examples/craft-scoreboard
load=$(realpath "$bin/examples/query-load")

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
: >"$work/empty.toml"
sleep 3600 &
owner=$!
pids+=("$owner")

wait_socket() {
    for _ in $(seq 1 500); do [ -S "$1" ] && return 0; sleep 0.01; done
    echo "nothing listens on $1" >&2
    return 1
}
field() { sed -E "s/.*$1=([0-9]+).*/\\1/" <<<"$2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
hwm() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

echo "machine: $(nproc) cores, $(uname -sr); $secs s per cell"
printf '%-8s %-7s %-5s | %8s %8s %8s %5s %9s | %8s %8s %8s | %s\n' \
    sessions clients fmt "q/s" "p50 ms" "p99 ms" busy "HWM MiB" "C q/s" "C p50" "C p99" verdict
missed=0
for n in 100 1000 10000 50000; do
    sb=$work/sb-$n
    "$craft" "$sb" "$n" "$owner"
    sock=$work/load-$n.sock
    "$bin/ftpwhod" --config "$work/empty.toml" --listen "$sock" --scoreboard "$sb" \
        --idle-timeout 0 --max-connections 64 2>/dev/null &
    server=$!
    pids+=("$server")
    wait_socket "$sock"
    for clients in 1 8 32 64; do
        # C, in a mount namespace where the scoreboard is at its fixed place.
        c=$(unshare --mount --propagation private sh -c \
            'mkdir -p /var/run/pure-ftpd && mount --bind "$1" /var/run/pure-ftpd && shift && exec "$@"' \
            sh "$sb" "$load" exec "$clients" "$secs" -- /usr/sbin/pure-ftpwho -n)
        for fmt in text json; do
            echo 5 >"/proc/$server/clear_refs"
            r=$("$load" ours "$sock" "$fmt" "$clients" "$secs")
            peak=$(hwm "$server")
            verdict=ok
            [ "$(field busy "$r")" -eq 0 ] || verdict="BUSY"
            [ "$(field qps "$r")" -ge $((2 * $(field qps "$c"))) ] || verdict="$verdict <2xC"
            [ "$(field p99 "$r")" -le "$(field p99 "$c")" ] || verdict="$verdict p99>C"
            if [ "$n" -eq 50000 ] && [ "$clients" -eq 64 ] && [ "$fmt" = json ]; then
                awk -v m="$peak" 'BEGIN { exit !(m <= 64) }' || verdict="$verdict RSS>64MiB"
            fi
            [ "$verdict" = ok ] || missed=$((missed + 1))
            printf '%-8s %-7s %-5s | %8s %8s %8s %5s %9s | %8s %8s %8s | %s\n' \
                "$n" "$clients" "$fmt" "$(field qps "$r")" "$(ms "$(field p50 "$r")")" \
                "$(ms "$(field p99 "$r")")" "$(field busy "$r")" "$peak" \
                "$(field qps "$c")" "$(ms "$(field p50 "$c")")" "$(ms "$(field p99 "$c")")" "$verdict"
        done
    done
    kill "$server"
done
echo "cells missing a target: $missed"
