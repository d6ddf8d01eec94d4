# shellcheck shell=bash
# shellcheck disable=SC2016,SC2034,SC2119,SC2120 # scripts for bash -c; names used by cases.sh
# Helpers shared by the end-to-end harness (tests/e2e/run) and its cases
# (tests/e2e/cases.sh). Sourced, never executed. Every helper that enters the
# container is bounded by a timeout.
#
# Environment set by the harness:
#   CT_PID        pid (host view) of the container's systemd
#   CT_ROOT       host path of the container's root (overlay mount point)
#   E2E_DEB_CT    path of the package inside the container ("" if none)
#   E2E_DEB_ERROR why there is no package (when E2E_DEB_CT is empty)
#   FTP_USER FTP_PASS FTP_PORT FTP_HOME   the FTP account and server
#   HOOK_USER HOOK_LOG HOOK_DIR           the upload program's account and log

# Journal MESSAGE_ID of a processed upload (documented by pure-uploadscript).
MID_PROCESSED=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a60
READER_UNIT=pure-uploadscript.service
READER_PATH_UNIT=pure-uploadscript.path
WHO_UNIT=pure-ftpwho.service
WHO_SOCKET_UNIT=pure-ftpwho.socket
PKG_NAME=pureftpd-systemd
FTPD_UNIT=e2e-ftpd.service
CT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Case bookkeeping -----------------------------------------------------------

# Prints the reason a case fails and ends the case.
fail() {
    echo "reason: $*" >&2
    exit 1
}

# A progress line in the case's log.
note() {
    printf '  [%s] %s\n' "$(date +%T.%3N)" "$*"
}

# Commands in the container ------------------------------------------------

# ct [-t SECONDS] [-u USER] CMD ARGS...: runs CMD inside the container with a
# clean environment (as USER when given), bounded by a timeout (default 60 s).
ct() {
    local secs=60 user=
    while :; do
        case "${1:-}" in
            -t) secs=$2; shift 2 ;;
            -u) user=$2; shift 2 ;;
            *) break ;;
        esac
    done
    local -a as=()
    if [ -n "$user" ]; then
        as=(setpriv --reuid="$user" --regid="$user" --init-groups --reset-env --)
    fi
    timeout -k 5 "$secs" nsenter -t "$CT_PID" -a \
        env -i PATH="$CT_PATH" LANG=C.UTF-8 HOME=/root TERM=dumb "${as[@]}" "$@"
}

# cts [-t SECONDS] [-u USER] SCRIPT [ARGS...]: runs a bash script in the container.
cts() {
    local -a opts=()
    while :; do
        case "${1:-}" in
            -t | -u) opts+=("$1" "$2"); shift 2 ;;
            *) break ;;
        esac
    done
    local script=$1
    shift
    ct "${opts[@]}" bash -c "set -euo pipefail; $script" e2e "$@"
}

# ct_write PATH MODE: writes stdin to PATH inside the container.
ct_write() {
    ct install -D -m "$2" /dev/stdin "$1"
}

# wait_until SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s until it
# succeeds; fails the case with DESCRIPTION when SECONDS pass.
wait_until() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    while :; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "timed out after ${secs}s waiting for: $what"
        fi
        sleep 0.2
    done
}

# Units --------------------------------------------------------------------

# unit_prop UNIT PROPERTY: prints the property's value.
unit_prop() {
    ct systemctl show -p "$2" --value "$1"
}

# unit_state UNIT: prints ActiveState (active, inactive, failed, ...).
unit_state() {
    unit_prop "$1" ActiveState
}

unit_is() {
    [ "$(unit_state "$1")" = "$2" ]
}

# main_pid UNIT: prints the unit's MainPID (container pid namespace), 0 if none.
main_pid() {
    unit_prop "$1" MainPID
}

# main_pid_changed UNIT OLDPID: true once the unit is active with a new MainPID.
main_pid_changed() {
    local p
    p=$(main_pid "$1") || return 1
    [ "$p" != 0 ] && [ "$p" != "$2" ] && unit_is "$1" active
}

# Package ------------------------------------------------------------------

require_package() {
    if ! ct dpkg-query -W -f='${Status}' "$PKG_NAME" 2>/dev/null | grep 'ok installed' >/dev/null; then
        fail "package $PKG_NAME is not installed in the container (see case package-install${E2E_DEB_ERROR:+: $E2E_DEB_ERROR})"
    fi
}

# FTP ----------------------------------------------------------------------

ftp_url() {
    printf 'ftp://%s:%s@127.0.0.1:%s/%s' "$FTP_USER" "$FTP_PASS" "$FTP_PORT" "${1:-}"
}

# ftp_login: one login + directory listing with curl inside the container.
ftp_login() {
    ct -t 15 curl -sS --max-time 10 --list-only "$(ftp_url)" >/dev/null
}

# start_ftpd: Debian's pure-ftpd (no -B) with the upload pipe (-o) and the
# scoreboard, supervised by the container's systemd (e2e-ftpd.service,
# written by case_setup).
start_ftpd() {
    ct systemctl reset-failed "$FTPD_UNIT" 2>/dev/null || true
    ct systemctl start "$FTPD_UNIT"
}

stop_ftpd() {
    ct systemctl stop "$FTPD_UNIT" 2>/dev/null || true
    ct systemctl reset-failed "$FTPD_UNIT" 2>/dev/null || true
}

# ensure_ftpd: pure-ftpd is running and accepts logins (starts it if needed).
ensure_ftpd() {
    if ! unit_is "$FTPD_UNIT" active; then
        note "starting pure-ftpd ($FTPD_UNIT)"
        start_ftpd
    fi
    wait_until 15 "an FTP login to pure-ftpd on 127.0.0.1:$FTP_PORT" ftp_login
}

# make_file DIR NAME SIZE: creates a local file (random content) in the container.
make_file() {
    cts 'mkdir -p "$1" && head -c "$3" /dev/urandom > "$1/$2"' "$1" "$2" "$3"
}

# upload LOCALFILE: uploads one file to the FTP account's home (curl -T).
upload() {
    ct -t 40 curl -sS --max-time 30 -T "$1" "$(ftp_url)"
}

# Upload journal -----------------------------------------------------------

# processed_json: every "processed" entry of the FTP account, one JSON a line.
processed_json() {
    ct journalctl --no-pager -q -o json -u "$READER_UNIT" \
        "UPLOAD_VUSER=$FTP_USER" "MESSAGE_ID=$MID_PROCESSED"
}

# processed_count FILE: how many "processed" entries name FILE.
processed_count() {
    processed_json | jq -s --arg f "$1" '[.[] | select(.UPLOAD_FILE == $f)] | length'
}

# all_processed_once FILE...: true when each FILE has at least one entry.
all_processed() {
    local json f n
    json=$(processed_json) || return 1
    for f in "$@"; do
        n=$(jq -s --arg f "$f" '[.[] | select(.UPLOAD_FILE == $f)] | length' <<<"$json")
        [ "$n" -ge 1 ] || return 1
    done
}

# wait_processed SECONDS FILE...: waits until each FILE has a processed
# entry; fails naming the files that have none.
wait_processed() {
    local secs=$1 f n json
    shift
    local deadline=$((SECONDS + secs))
    until all_processed "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            local -a missing=()
            json=$(processed_json)
            for f in "$@"; do
                n=$(jq -s --arg f "$f" '[.[] | select(.UPLOAD_FILE == $f)] | length' <<<"$json")
                [ "$n" -ge 1 ] || missing+=("${f##*/}")
            done
            fail "${#missing[@]} of $# uploads have no processed journal entry after ${secs}s: ${missing[*]}"
        fi
        sleep 0.3
    done
}

# expect_processed_once FILE...: after all are seen, waits a moment for
# duplicates, then fails unless each FILE has exactly one entry.
expect_processed_once() {
    local json f n bad=0
    sleep 1
    json=$(processed_json)
    for f in "$@"; do
        n=$(jq -s --arg f "$f" '[.[] | select(.UPLOAD_FILE == $f)] | length' <<<"$json")
        if [ "$n" != 1 ]; then
            echo "  $f: $n processed journal entries (expected 1)"
            bad=$((bad + 1))
        fi
    done
    [ "$bad" = 0 ] || fail "$bad of $# uploads do not have exactly one processed journal entry"
}

# hook_calls FILE: the upload program's log lines (JSON) for FILE.
hook_calls() {
    local log
    log=$(ct cat "$HOOK_LOG" 2>/dev/null) || true
    jq -c --arg f "$1" 'select(.arg == $f)' <<<"$log"
}

# hook_called FILE: true once the upload program has run for FILE.
hook_called() {
    [ -n "$(hook_calls "$1")" ]
}
