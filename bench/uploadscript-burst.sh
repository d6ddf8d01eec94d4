#!/usr/bin/env bash
# FTP clients waiting for the upload program: N uploads in a burst through
# Debian's pure-ftpd (C clients at once), against a program that sleeps
# P ms, with Debian's C reader and with ours; for each upload, the time from
# the end of its data transfer to the server's 226 reply (pure-ftpd sends it
# after writing the record into the upload pipe, with a blocking write under
# its lock: once the pipe is full, it waits for the reader). Also ours with a
# program that does nothing: the no-program value. Runs in the end-to-end
# suite's booted container. Needs root.
#
# Usage: bench/uploadscript-burst.sh [N (2000)] [clients (8)] [program ms (50)]
# Environment: E2E_DEB (a package already built; otherwise it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_N=${1:-2000} BENCH_CLIENTS=${2:-8} BENCH_SLEEP_MS=${3:-50}
export E2E_CASES="boot setup package-install path-activation bench-burst"
export E2E_LOG_DIR=${E2E_LOG_DIR:-$(pwd)/target/bench-burst}
export E2E_TIMEOUT=${E2E_TIMEOUT:-1800}
status=0
tests/e2e/run || status=$?
grep -h '^BENCH' "$E2E_LOG_DIR/bench-burst.log" || echo "no figures: see $E2E_LOG_DIR/bench-burst.log"
exit "$status"
