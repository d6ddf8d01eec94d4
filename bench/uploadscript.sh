#!/usr/bin/env bash
# Throughput and idle memory of pure-uploadscript: this implementation
# against Debian's C one, alternated in one run.
#
# N records are written into the upload FIFO the way pure-ftpd writes them
# (one write() per record: 0x02 user 0x01 file 0x00); the program is a
# tiny compiled C program; the time is from the first write to the run on
# the last record. The C reader only knows /var/run/pure-ftpd.upload.pipe,
# so everything runs in a private mount namespace with a tmpfs on /run.
#
# Usage: bench/uploadscript.sh [N records (2000)] [rounds (3)]
# Environment: OURS (default target/release/pure-uploadscript, built if
# missing), C_READER (default /usr/sbin/pure-uploadscript), CC (default cc).
# Needs root. This implementation logs one line per upload on stderr
# (into a file), as it does when no journal is running.
set -euo pipefail

N=${1:-2000}
ROUNDS=${2:-3}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OURS=${OURS:-$ROOT/target/release/pure-uploadscript}
C_READER=${C_READER:-/usr/sbin/pure-uploadscript}
CC=${CC:-cc}

if [ -z "${BENCH_IN_NAMESPACE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "run as root (mount namespace, pure-uploadscript checks)" >&2; exit 2; }
    [ -x "$C_READER" ] || { echo "$C_READER missing: apt-get install pure-ftpd" >&2; exit 2; }
    if [ ! -x "$OURS" ]; then
        cargo build --release --bin pure-uploadscript >&2
    fi
    exec unshare --mount --propagation private env BENCH_IN_NAMESPACE=1 OURS="$OURS" \
        C_READER="$C_READER" CC="$CC" "$0" "$N" "$ROUNDS"
fi

mount -t tmpfs tmpfs /run
WORK=$(mktemp -d)
chmod 755 "$WORK"
reader_pid=
cleanup() {
    [ -n "$reader_pid" ] && kill "$reader_pid" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PIPE=/var/run/pure-ftpd.upload.pipe

cat > "$WORK/hook.c" <<C
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strlen(argv[1]) : 0;
    if (n >= 5 && strcmp(argv[1] + n - 5, "/last") == 0)
        close(open("$WORK/done", O_CREAT | O_WRONLY, 0644));
    return 0;
}
C
cat > "$WORK/writer.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* writer FIFO N FILE LAST: N records naming FILE, then one naming LAST. */
int main(int argc, char **argv)
{
    int fd = open(argv[1], O_WRONLY);
    long n = atol(argv[2]);
    char buf[4300];
    if (fd < 0) { perror("open"); return 1; }
    for (long i = 0; i <= n; i++) {
        int len = snprintf(buf, sizeof buf, "\002user%ld\001%s", i, i < n ? argv[3] : argv[4]);
        if (write(fd, buf, (size_t) len + 1) != len + 1) { perror("write"); return 1; }
    }
    return 0;
}
C
"$CC" -O2 -o "$WORK/hook" "$WORK/hook.c"
"$CC" -O2 -o "$WORK/writer" "$WORK/writer.c"
echo data > "$WORK/file"
echo data > "$WORK/last"

now() { date +%s%N; }

start_reader() { # $1 = c | ours
    rm -f "$PIPE"
    if [ "$1" = c ]; then
        mkfifo -m 600 "$PIPE"
        "$C_READER" -r "$WORK/hook" 2>"$WORK/c.log" &
    else
        # The queue (synced once per batch) in the work directory.
        STATE_DIRECTORY=$WORK/state "$OURS" -r "$WORK/hook" --pipe "$PIPE" \
            --config "$WORK/none.toml" -p "$WORK/ours.pid" 2>"$WORK/ours.log" &
    fi
    reader_pid=$!
    for _ in $(seq 400); do [ -p "$PIPE" ] && break; sleep 0.01; done
    sleep 0.3 # open, identity switch
}

stop_reader() {
    kill "$reader_pid"
    wait "$reader_pid" 2>/dev/null || true
    reader_pid=
}

# CPU time (user + system, in clock ticks) of the reader and of the
# programs it ran and reaped: less sensitive than wall time to other load.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_MS=$(( 1000 / $(getconf CLK_TCK) ))

touch "$WORK/none.toml"
declare -A total cpu walls
walls[c]=""
walls[ours]=""
total[c]=0
total[ours]=0
cpu[c]=0
cpu[ours]=0
echo "records per run: $N, rounds: $ROUNDS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for impl in c ours; do
        start_reader "$impl"
        rm -f "$WORK/done"
        t0=$(now)
        "$WORK/writer" "$PIPE" "$N" "$WORK/file" "$WORK/last"
        until [ -e "$WORK/done" ]; do sleep 0.002; done
        t1=$(now)
        sleep 0.05 # the last program is reaped
        ticks=$(cpu_ticks "$reader_pid")
        own=$(own_ticks "$reader_pid")
        stop_reader
        ms=$(( (t1 - t0) / 1000000 ))
        total[$impl]=$(( total[$impl] + t1 - t0 ))
        walls[$impl]="${walls[$impl]} $(( t1 - t0 ))"
        cpu[$impl]=$(( cpu[$impl] + ticks ))
        printf 'round %d  %-4s wall %6d ms (%7.1f us/record)  cpu %6d ms (reader itself %d ms)\n' \
            "$round" "$impl" "$ms" "$(echo "($t1 - $t0) / 1000 / ($N + 1)" | bc -l)" \
            $(( ticks * TICK_MS )) $(( own * TICK_MS ))
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
ratio=$(echo "${total[ours]} / ${total[c]}" | bc -l)
cpu_ratio=$(echo "${cpu[ours]} / ${cpu[c]}" | bc -l)
# Other load on the machine lengthens some rounds a lot: the best round of
# each and the medians are steadier than the totals.
stat() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk -v q="$2" '{v[NR]=$1} END {print q == "min" ? v[1] : v[int((NR + 1) / 2)]}'; }
best=$(echo "$(stat "${walls[ours]}" min) / $(stat "${walls[c]}" min)" | bc -l)
median=$(echo "$(stat "${walls[ours]}" median) / $(stat "${walls[c]}" median)" | bc -l)
printf 'wall time ratio ours/C: %.3f total, %.3f median, %.3f best round (goal <= 0.8)\n' \
    "$ratio" "$median" "$best"
printf 'cpu time ratio ours/C:  %.3f (reader + programs)\n' "$cpu_ratio"

idle_rss() { # $1 = c | ours; prints VmRSS in kB after 1 s idle
    start_reader "$1"
    sleep 1
    awk '/^VmRSS/ {print $2}' "/proc/$reader_pid/status"
    stop_reader
}
rss_c=$(idle_rss c)
rss_ours=$(idle_rss ours)
printf 'idle VmRSS: C %d kB, ours %d kB (goal <= 4096 kB)\n' "$rss_c" "$rss_ours"
echo "logging: stderr to a file (no journald on this machine)"
