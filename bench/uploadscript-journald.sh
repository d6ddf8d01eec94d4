#!/usr/bin/env bash
# pure-uploadscript against Debian's C reader in a booted container, with
# journald logging and the queue's syncs: N records written into the upload
# pipe at once (as pure-ftpd writes them), the time to the run on the last
# (which opens a FIFO the timer waits on: no polling takes CPU meanwhile).
#
# Boots the end-to-end suite's container (tests/e2e/run: systemd-nspawn over
# an overlay of this machine's root, the package installed next to Debian's
# pure-ftpd) and runs only the cases that set it up plus bench-queue. Ours is
# pure-uploadscript.service (process isolation); the C reader is
# /usr/sbin/pure-uploadscript.distrib under systemd-run. Needs root.
#
# Usage: bench/uploadscript-journald.sh [N (2000)] [rounds (3)] [program ms (0)] [jobs (1)]
#   bench/uploadscript-journald.sh 2000 3 0 1    # no-op program: time ratio ours/C
#   bench/uploadscript-journald.sh 400 3 50 4    # 50 ms program: uploads/s
# Environment: E2E_DEB (a package already built; otherwise it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_N=${1:-2000} BENCH_ROUNDS=${2:-3} BENCH_SLEEP_MS=${3:-0} BENCH_JOBS=${4:-1}
export E2E_CASES="boot setup package-install path-activation bench-queue"
export E2E_LOG_DIR=${E2E_LOG_DIR:-$(pwd)/target/bench-queue}
export E2E_TIMEOUT=${E2E_TIMEOUT:-1800}
status=0
tests/e2e/run || status=$?
grep -h '^BENCH' "$E2E_LOG_DIR/bench-queue.log" || echo "no figures: see $E2E_LOG_DIR/bench-queue.log"
exit "$status"
