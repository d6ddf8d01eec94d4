#!/usr/bin/env bash
# Time per upload with each run of the program in a systemd unit of its own
# (pure-uploadscript-run@.service), against the floor: systemd starting a
# trivial Accept=yes instance that runs /bin/true, per connection, measured
# alternately in the same booted container.
#
# Boots the end-to-end suite's container (tests/e2e/run: systemd-nspawn over
# an overlay of this machine's root, the package installed next to Debian's
# pure-ftpd) and runs only the cases that set it up plus bench-units. The
# program is /bin/true; N records naming existing files are written into the
# upload pipe at once, and the time is from the first write to the reader's
# metrics.json counting them all (read in-process every 5 ms: polling
# through systemctl costs pid 1 and D-Bus as much CPU as a unit start).
# Needs root.
#
# Usage: bench/uploadscript-units.sh [N uploads per round (200)] [rounds (3)]
# Environment: E2E_DEB (a package already built; otherwise it is built).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_N=${1:-200} BENCH_ROUNDS=${2:-3}
export E2E_CASES="boot setup package-install path-activation bench-units"
export E2E_LOG_DIR=${E2E_LOG_DIR:-$(pwd)/target/bench-units}
export E2E_TIMEOUT=${E2E_TIMEOUT:-900}
status=0
tests/e2e/run || status=$?
grep -h '^BENCH' "$E2E_LOG_DIR/bench-units.log" || echo "no figures: see $E2E_LOG_DIR/bench-units.log"
exit "$status"
