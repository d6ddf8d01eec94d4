#!/usr/bin/env bash
# Times one Prometheus scrape of pureftpd-exporter (curl GET /metrics, the
# exporter already running, as between two scrapes of a Prometheus server)
# against Debian's C `pure-ftpwho -s -n` on the same crafted scoreboard of
# 10,000 sessions, in one run, and prints the ratio (target: <= 0.35). The
# scoreboard is crafted as bench/ftpwho.sh crafts it. Needs root (mount
# namespace, root-owned entries), Debian's pure-ftpd, curl and hyperfine
# (scripts/install-deps).
#
# Both sides include a process start: the C tool's own, and curl's for the
# scrape. The tools alternate in BLOCKS blocks of RUNS/BLOCKS runs each; the
# ratio is the median of the blocks' ratios of medians.
#
#   bench/exporter.sh            # 10,000 sessions
#   SESSIONS=1000 RUNS=20 BLOCKS=4 bench/exporter.sh
set -euo pipefail
cd "$(dirname "$0")/.."

sessions=${SESSIONS:-10000}
runs=${RUNS:-60}
blocks=${BLOCKS:-6}
c_tool=/usr/sbin/pure-ftpwho

[ "$(id -u)" -eq 0 ] || { echo "bench/exporter.sh: run as root" >&2; exit 1; }
[ -x "$c_tool" ] || { echo "bench/exporter.sh: $c_tool missing (apt-get install pure-ftpd)" >&2; exit 1; }
for tool in hyperfine curl; do
    command -v "$tool" >/dev/null || { echo "bench/exporter.sh: $tool missing (scripts/install-deps)" >&2; exit 1; }
done

cargo build --release --quiet --bin pureftpd-exporter
exporter=$PWD/target/release/pureftpd-exporter

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

for _ in 1 2 3 4; do
    sleep 3600 &
    pids+=("$!")
done

mkdir -m 700 "$tmp/pure-ftpd"
python3 - "$tmp/pure-ftpd" "$sessions" "${pids[@]}" <<'PY'
import os, socket, struct, sys, time

# Debian 12's FTPWhoEntry: 1464 bytes, account at 304, filename at 433.
directory, count, pids = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
now = int(time.time())

def sockaddr(host, port):
    if ":" in host:
        raw = struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", port, 0)
        raw += socket.inet_pton(socket.AF_INET6, host) + struct.pack("<I", 0)
    else:
        raw = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port)
        raw += socket.inet_aton(host)
    return raw.ljust(128, b"\0")

for i in range(count):
    state = (1, 2, 3)[i % 3]
    peer = f"2001:db8::{i % 65536:x}" if i % 10 == 0 else f"198.{18 + i // 65536 % 2}.{i // 256 % 256}.{i % 256}"
    local = "2001:db8::1" if i % 10 == 0 else "192.0.2.1"
    total = 700_000_000 + i if state == 2 else 0
    current = 0 if state == 1 else 123_456 * (i % 1000 + 1)
    record = struct.pack("<ii", state, pids[i % len(pids)])
    record += sockaddr(peer, 40000 + i % 20000) + sockaddr(local, 21)
    record += struct.pack("<qqqqq", now - 60 - i, now - 30 if state != 1 else 0, 0, total, current)
    record += f"user{i:05d}".encode().ljust(129, b"\0")
    record += f"/pub/files/archive-{i:05d}.tar.gz".encode().ljust(1024, b"\0")
    record = record.ljust(1464, b"\0")
    assert len(record) == 1464
    path = os.path.join(directory, f"client-{i + 1:08d}")
    with open(path, "wb") as f:
        f.write(record)
    os.chmod(path, 0o600)
PY

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "one scrape (curl, warm exporter) against pure-ftpwho -s -n on $sessions crafted sessions, $runs runs each in $blocks blocks"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The C tool reads /var/run/pure-ftpd: a private mount namespace puts the
# crafted scoreboard there, for both.
unshare --mount --propagation private sh -eu -c '
    mount -t tmpfs tmpfs /run
    mkdir -m 700 /run/pure-ftpd
    mount --bind "$1/pure-ftpd" /run/pure-ftpd
    "$3" --listen "127.0.0.1:$6" --scoreboard /run/pure-ftpd --idle-timeout 0 \
        --upload-state-dir /run/none --config /dev/null 2>"$1/exporter.log" &
    exporter_pid=$!
    trap "kill $exporter_pid" EXIT
    url="http://127.0.0.1:$6/metrics"
    for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.05; done
    # The scrape counts every session the C tool lists.
    curl -sf "$url" > "$1/scrape.out"
    counted=$(awk "/^pureftpd_sessions[{]/ { n += \$2 } END { print n }" "$1/scrape.out")
    listed=$("$2" -s -n | wc -l)
    echo "scrape: $counted sessions, $(wc -c < "$1/scrape.out") bytes; C tool: $listed lines"
    [ "$counted" = "$listed" ] || { echo "the scrape counts $counted sessions, the C tool lists $listed" >&2; exit 1; }
    per=$(( ($4 + $5 - 1) / $5 ))
    for b in $(seq "$5"); do
        if [ $((b % 2)) = 1 ]; then
            hyperfine --shell=none --warmup 2 --runs "$per" --style none \
                --export-json "$1/times-$b.json" \
                -n C "$2 -s -n" -n scrape "curl -sf -o /dev/null $url" > /dev/null
        else
            hyperfine --shell=none --warmup 2 --runs "$per" --style none \
                --export-json "$1/times-$b.json" \
                -n scrape "curl -sf -o /dev/null $url" -n C "$2 -s -n" > /dev/null
        fi
    done
' sh "$tmp" "$c_tool" "$exporter" "$runs" "$blocks" "$port"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$tmp" "$blocks" <<'PY'
import json, statistics, sys
directory, blocks = sys.argv[1], int(sys.argv[2])
times = {"C": [], "scrape": []}
ratios = []
for b in range(1, blocks + 1):
    with open(f"{directory}/times-{b}.json") as f:
        results = {r["command"]: r for r in json.load(f)["results"]}
    for name in times:
        times[name] += results[name]["times"]
    ratios.append(statistics.median(results["scrape"]["times"])
                  / statistics.median(results["C"]["times"]))
for name, t in times.items():
    print(f"{name + ':':5} median {statistics.median(t) * 1000:.2f} ms, "
          f"min {min(t) * 1000:.2f} ms over {len(t)} runs")
print("ratio (scrape / C) per block: " + " ".join(f"{r:.3f}" for r in ratios))
print(f"ratio (scrape / C): median of blocks {statistics.median(ratios):.3f}, "
      f"of all runs {statistics.median(times['scrape']) / statistics.median(times['C']):.3f}"
      "   target <= 0.35")
PY
