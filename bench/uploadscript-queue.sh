#!/usr/bin/env bash
# Sustained throughput with a slow program: this implementation with
# jobs = 4 (runs side by side from the durable queue) against Debian's C
# reader (one run at a time), alternated in one run.
#
# N records naming N different files are written into the upload FIFO as
# pure-ftpd writes them (one write() per record); the program sleeps 50 ms
# (a webhook, a scan); the time is from the first write to the end of the
# run on the last record. Uploads per second = N / time. Everything runs in a
# private mount namespace with a tmpfs on /run (the C reader only knows
# /var/run/pure-ftpd.upload.pipe); our queue is in the work directory, on
# the file system of /tmp, synced as in production.
#
# Usage: bench/uploadscript-queue.sh [N records (400)] [rounds (3)] [jobs (4)] [program ms (50)]
# Environment: OURS (default target/release/pure-uploadscript, built if
# missing), C_READER (default /usr/sbin/pure-uploadscript), CC (default cc).
# Needs root.
set -euo pipefail

N=${1:-400}
ROUNDS=${2:-3}
JOBS=${3:-4}
SLEEP_MS=${4:-50}
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
        C_READER="$C_READER" CC="$CC" "$0" "$N" "$ROUNDS" "$JOBS" "$SLEEP_MS"
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
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strlen(argv[1]) : 0;
    struct timespec t = { 0, $SLEEP_MS * 1000000L };
    nanosleep(&t, 0);
    if (n >= 5 && strcmp(argv[1] + n - 5, "/last") == 0)
        close(open("$WORK/done", O_CREAT | O_WRONLY, 0644));
    return 0;
}
C
cat > "$WORK/writer.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* writer FIFO N DIR: N records naming DIR/f-I, then one naming DIR/last. */
int main(int argc, char **argv)
{
    int fd = open(argv[1], O_WRONLY);
    long n = atol(argv[2]);
    char buf[4300];
    if (fd < 0) { perror("open"); return 1; }
    for (long i = 0; i <= n; i++) {
        int len = i < n ? snprintf(buf, sizeof buf, "\002u\001%s/f-%ld", argv[3], i)
                        : snprintf(buf, sizeof buf, "\002u\001%s/last", argv[3]);
        if (write(fd, buf, (size_t) len + 1) != len + 1) { perror("write"); return 1; }
    }
    return 0;
}
C
"$CC" -O2 -o "$WORK/hook" "$WORK/hook.c"
"$CC" -O2 -o "$WORK/writer" "$WORK/writer.c"
mkdir "$WORK/files"
for i in $(seq 0 $((N - 1))); do echo data > "$WORK/files/f-$i"; done
echo data > "$WORK/files/last"
printf 'jobs = %d\n' "$JOBS" > "$WORK/ours.toml"

start_reader() { # $1 = c | ours
    rm -f "$PIPE"
    if [ "$1" = c ]; then
        mkfifo -m 600 "$PIPE"
        "$C_READER" -r "$WORK/hook" 2>"$WORK/c.log" &
    else
        rm -rf "$WORK/state"
        STATE_DIRECTORY=$WORK/state "$OURS" -r "$WORK/hook" --pipe "$PIPE" \
            --config "$WORK/ours.toml" -p "$WORK/ours.pid" 2>"$WORK/ours.log" &
    fi
    reader_pid=$!
    for _ in $(seq 400); do [ -p "$PIPE" ] && break; sleep 0.01; done
    sleep 0.3
}

stop_reader() {
    kill "$reader_pid"
    wait "$reader_pid" 2>/dev/null || true
    reader_pid=
}

declare -A walls
echo "records per run: $N, rounds: $ROUNDS, program: sleeps $SLEEP_MS ms, ours: jobs = $JOBS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for impl in c ours; do
        start_reader "$impl"
        rm -f "$WORK/done"
        t0=$(date +%s%N)
        "$WORK/writer" "$PIPE" "$N" "$WORK/files"
        until [ -e "$WORK/done" ]; do sleep 0.005; done
        t1=$(date +%s%N)
        stop_reader
        walls[$impl]="${walls[$impl]:-} $((t1 - t0))"
        printf 'round %d  %-4s %7d ms  %7.1f uploads/s\n' "$round" "$impl" $(((t1 - t0) / 1000000)) \
            "$(echo "($N + 1) * 1000000000 / ($t1 - $t0)" | bc -l)"
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
mc=$(median "${walls[c]}")
mo=$(median "${walls[ours]}")
printf 'median uploads/s: C %.1f, ours %.1f; ours/C %.2fx (goal >= 3.5x)\n' \
    "$(echo "($N + 1) * 1000000000 / $mc" | bc -l)" "$(echo "($N + 1) * 1000000000 / $mo" | bc -l)" \
    "$(echo "$mc / $mo" | bc -l)"
