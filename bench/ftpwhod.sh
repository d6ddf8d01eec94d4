#!/usr/bin/env bash
# Responder latency, in one run:
#   - warm queries to a running ftpwhod (p50/p99 of list, text format,
#     numeric addresses, one connection per query) at 100 and 10,000 sessions;
#   - the C pure-ftpwho (Debian's) run on the same scoreboards, for comparison;
#   - cold start: socket passed by systemd-socket-activate, time from the
#     start to the first answer, at 100 sessions.
# Targets: warm p50 <= 1 ms at 100 sessions; cold start <= 20 ms.
# Run as root (the C tool and the scoreboard want it). Usage: bench/ftpwhod.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin ftpwhod --bin ftpwho-query \
    --example craft-scoreboard --example query-latency
bin=target/release
craft=$bin/examples/craft-scoreboard
latency=$bin/examples/query-latency

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# An empty configuration: the defaults and the options only.
: >"$work/empty.toml"

# Every crafted session belongs to this live process.
sleep 3600 &
owner=$!
pids+=("$owner")

wait_socket() {
    for _ in $(seq 1 500); do
        [ -S "$1" ] && return 0
        sleep 0.01
    done
    echo "nothing listens on $1" >&2
    return 1
}

# field NAME LINE: the value of NAME=... in a query-latency line.
field() { sed -E "s/.*$1=([0-9]+).*/\\1/" <<<"$2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f ms", us / 1000 }'; }
verdict() { # value_us limit_us
    if [ "$1" -le "$2" ]; then echo "target met"; else echo "TARGET MISSED"; fi
}

echo "machine: $(nproc) cores, $(uname -sr)"
for n in 100 10000; do
    sb=$work/sb-$n
    "$craft" "$sb" "$n" "$owner"
    sock=$work/warm-$n.sock
    "$bin/ftpwhod" --config "$work/empty.toml" --listen "$sock" --scoreboard "$sb" \
        --idle-timeout 0 2>/dev/null &
    pids+=("$!")
    wait_socket "$sock"
    if [ "$n" -le 100 ]; then count=2000; else count=60; fi
    warm=$("$latency" warm "$sock" "$count" text)
    c=$(unshare --mount --propagation private sh -c \
        'mkdir -p /var/run/pure-ftpd && mount --bind "$1" /var/run/pure-ftpd && shift && exec "$@"' \
        sh "$sb" "$latency" exec "$((count < 200 ? count : 200))" -- /usr/sbin/pure-ftpwho -n)
    echo
    echo "== $n sessions"
    echo "warm ftpwhod query:  p50 $(ms "$(field p50 "$warm")")  p99 $(ms "$(field p99 "$warm")")  (n=$(field n "$warm"))"
    echo "C pure-ftpwho -n:    p50 $(ms "$(field p50 "$c")")  p99 $(ms "$(field p99 "$c")")  (n=$(field n "$c"), process start included)"
    if [ "$n" -eq 100 ]; then
        echo "target warm p50 <= 1 ms: $(verdict "$(field p50 "$warm")" 1000)"
    fi
done

echo
echo "== cold start (100 sessions, systemd-socket-activate, first answer)"
cold_sock=$work/cold.sock
cold=$("$latency" cold "$cold_sock" 40 -- systemd-socket-activate -l "$cold_sock" \
    "$bin/ftpwhod" --config "$work/empty.toml" --scoreboard "$work/sb-100" --idle-timeout 5)
echo "cold start:          p50 $(ms "$(field p50 "$cold")")  p99 $(ms "$(field p99 "$cold")")  (n=$(field n "$cold"))"
echo "target cold start <= 20 ms (p50): $(verdict "$(field p50 "$cold")" 20000)"
