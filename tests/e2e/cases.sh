# shellcheck shell=bash
# shellcheck disable=SC2016 # quoted scripts run in the container
# The end-to-end cases. Each case_* function runs in its own bash process
# (set -Eeuo pipefail, bounded by a timeout) after lib.sh is sourced; it
# passes by returning and fails through `fail REASON` (or any failing command).
# The cases share one container and run in the order tests/e2e/run lists them.

FIFO=/run/pure-ftpd.upload.pipe
FIFO_LOCK=/run/pure-ftpd.upload.lock
HOOK=/usr/local/libexec/e2e-upload-hook
SRC=/var/tmp/e2e-src
STATE=/var/tmp/e2e-state
WHO_USER=e2ewho
OUT_USER=e2eout

# Seconds of a systemd time span ("1min 30s", "500ms", ...), rounded up.
span_secs() {
    local us
    us=$(ct systemd-analyze timespan "$1" | awk '/μs:/ {print $2}')
    echo $(((us + 999999) / 1000000))
}

id_of() { ct id -u "$1"; }
gid_of() { ct id -g "$1"; }

# ---------------------------------------------------------------------------
case_boot() {
    local state comm nets
    comm=$(ct cat /proc/1/comm)
    [ "$comm" = systemd ] || fail "PID 1 in the container is '$comm', not systemd"
    note "$(ct systemctl --version | head -1)"
    state=$(ct systemctl is-system-running || true)
    case "$state" in
        running) ;;
        degraded)
            note "system is degraded; failed units:"
            ct systemctl --failed --no-legend --plain | sed 's/^/    /'
            ;;
        *) fail "systemctl is-system-running says '$state'" ;;
    esac
    nets=$(ct ls /sys/class/net | tr '\n' ' ')
    [ "$nets" = "lo " ] || fail "container has network interfaces other than lo: $nets"
    ct systemd-cat -t e2e-probe echo "journal-probe-$$"
    wait_until 10 "the journal to record a probe message" \
        cts 'journalctl -q --no-pager -t e2e-probe | grep "journal-probe-$1" >/dev/null' "$$"
}

# ---------------------------------------------------------------------------
case_setup() {
    note "FTP account $FTP_USER (home $FTP_HOME), upload program account $HOOK_USER"
    cts 'mkdir -p "$(dirname "$1")"
         useradd --create-home --home-dir "$1" --shell /bin/bash "$2"
         echo "$2:$3" | chpasswd
         useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$4"
         install -d -o "$4" -g "$4" -m 0755 "$5"
         useradd --create-home --shell /bin/bash '"$WHO_USER"'
         useradd --create-home --shell /bin/bash '"$OUT_USER"'
         mkdir -p '"$SRC $STATE" \
        "$FTP_HOME" "$FTP_USER" "$FTP_PASS" "$HOOK_USER" "$HOOK_DIR"

    # The upload program: one JSON line per call with what it was given.
    ct_write "$HOOK" 0755 <<EOF
#!/bin/sh
# Upload program of the end-to-end suite: records argv, ids and environment.
# Files named *-slow.* keep it busy for 2 s first.
case "\${1-}" in *-slow.*) /bin/sleep 2 ;; esac
exec /usr/bin/jq -cn --arg arg "\${1-}" --arg argc "\$#" \\
    --arg uid "\$(/usr/bin/id -u)" --arg gid "\$(/usr/bin/id -g)" \\
    --arg groups "\$(/usr/bin/id -G)" \\
    --arg vuser "\${UPLOAD_VUSER-}" --arg size "\${UPLOAD_SIZE-}" \\
    --arg upload_uid "\${UPLOAD_UID-}" --arg upload_gid "\${UPLOAD_GID-}" \\
    --arg env "\$(/usr/bin/env | /usr/bin/cut -d= -f1 | /usr/bin/sort | /usr/bin/tr '\n' ' ')" \\
    '{arg: \$arg, argc: (\$argc | tonumber), uid: (\$uid | tonumber),
      gid: (\$gid | tonumber), groups: \$groups, vuser: \$vuser, size: \$size,
      upload_uid: \$upload_uid, upload_gid: \$upload_gid, env: \$env}' \\
    >> $HOOK_LOG
EOF
    local uid gid
    uid=$(id_of "$HOOK_USER")
    gid=$(gid_of "$HOOK_USER")
    # Configuration of the project's daemons, as an administrator writes it.
    # Debian's pure-ftpd as a plain service (its package has only a SysV script).
    ct_write "/etc/systemd/system/$FTPD_UNIT" 0644 <<EOF
[Unit]
Description=Debian's pure-ftpd on 127.0.0.1:$FTP_PORT (end-to-end suite)

[Service]
ExecStart=/usr/sbin/pure-ftpd -S 127.0.0.1,$FTP_PORT -l unix -o -j -E
EOF
    ct_write /etc/pure-uploadscript.d/50-e2e.toml 0644 <<EOF
# end-to-end suite: the upload program and the account it runs as
run = "$HOOK"
uid = $uid
gid = $gid
EOF
    ct_write /etc/systemd/system/pure-uploadscript.service.d/50-e2e.conf 0644 <<EOF
# end-to-end suite: where the upload program may write
[Service]
ReadWritePaths=$HOOK_DIR
EOF
    ct_write /etc/ftpwhod.d/50-e2e.toml 0644 <<EOF
# end-to-end suite: exit quickly when idle
idle_timeout = 3
EOF
    ct systemctl daemon-reload
    # Accounts that exist before the package, to check purge leaves none.
    cts 'cut -d: -f1 /etc/passwd | sort > "$1/passwd.before"
         cut -d: -f1 /etc/group | sort > "$1/group.before"' "$STATE"
}

# ---------------------------------------------------------------------------
# Debian's pure-ftpd and C pure-uploadscript under this systemd: the
# baseline the package is measured against, independent of the package.
case_debian_ftpd_smoke() {
    local uid gid f=$SRC/smoke/smoke-file.txt calls
    uid=$(id_of "$HOOK_USER")
    gid=$(gid_of "$HOOK_USER")
    ct test -x /usr/sbin/pure-ftpd || fail "Debian's pure-ftpd is not installed"
    stop_ftpd
    ct rm -f "$FIFO" "$FIFO_LOCK"

    note "pure-ftpd -o with no reader: it blocks opening the upload pipe"
    start_ftpd
    wait_until 10 "pure-ftpd to create $FIFO" ct test -p "$FIFO"
    if ct -t 10 curl -sS --max-time 3 --list-only "$(ftp_url)" >/dev/null 2>&1; then
        fail "login worked although no reader had the upload pipe open"
    fi
    unit_is "$FTPD_UNIT" active || fail "pure-ftpd exited: $(unit_prop "$FTPD_UNIT" Result)"

    note "starting Debian's C pure-uploadscript (before the package diverts it)"
    ct systemd-run --quiet --unit=e2e-c-reader /usr/sbin/pure-uploadscript \
        -r "$HOOK" -u "$uid" -g "$gid"
    wait_until 10 "an FTP login once a reader exists" ftp_login

    make_file "$SRC/smoke" smoke-file.txt 321
    upload "$f"
    wait_until 10 "the upload program to run for $FTP_HOME/smoke-file.txt" \
        hook_called "$FTP_HOME/smoke-file.txt"
    calls=$(hook_calls "$FTP_HOME/smoke-file.txt")
    note "upload program saw: $calls"
    jq -e --argjson uid "$uid" --argjson gid "$gid" \
        '.argc == 1 and .uid == $uid and .gid == $gid and .size == "321"' \
        <<<"$calls" >/dev/null || fail "Debian's reader ran the program with unexpected values: $calls"

    note "cleaning up: stop pure-ftpd and the C reader, remove the pipe"
    stop_ftpd
    ct systemctl stop e2e-c-reader.service 2>/dev/null || true
    ct systemctl reset-failed e2e-c-reader.service 2>/dev/null || true
    ct rm -f "$FIFO" "$FIFO_LOCK"
}

# ---------------------------------------------------------------------------
case_package_install() {
    [ -n "${E2E_DEB_CT:-}" ] || fail "no package to install: ${E2E_DEB_ERROR:-unknown reason}"
    ct test ! -e "$FIFO" || fail "$FIFO exists before installation"
    note "dpkg -i $E2E_DEB_CT"
    ct -t 120 env DEBIAN_FRONTEND=noninteractive dpkg -i "$E2E_DEB_CT" ||
        fail "dpkg -i of the package failed"
    require_package

    local tool div
    for tool in /usr/sbin/pure-ftpwho /usr/sbin/pure-uploadscript; do
        ct dpkg-query -L "$PKG_NAME" | grep -x "$tool" >/dev/null || fail "$PKG_NAME does not ship $tool"
        div=$(ct dpkg-divert --listpackage "$tool")
        [ "$div" = "$PKG_NAME" ] || fail "$tool is not diverted by $PKG_NAME (diverted by: '$div')"
        ct test -x "$(ct dpkg-divert --truename "$tool")" ||
            fail "Debian's $tool is not kept under its diverted name"
        [ "$(ct bash -c "command -v ${tool##*/}")" = "$tool" ] ||
            fail "${tool##*/} on root's PATH is not $tool"
    done
    ct test -x /usr/sbin/ftpwhod || fail "/usr/sbin/ftpwhod missing"
    ct test -x /usr/bin/ftpwho-query || fail "/usr/bin/ftpwho-query missing"
    ct getent group ftpwho >/dev/null || fail "group ftpwho was not created"

    local u
    for u in "$READER_PATH_UNIT" "$WHO_SOCKET_UNIT"; do
        [ "$(ct systemctl is-enabled "$u" || true)" = enabled ] || fail "$u is not enabled after install"
        wait_until 5 "$u to be active after install" unit_is "$u" active
    done
    for u in "$READER_UNIT" "$WHO_UNIT"; do
        unit_is "$u" inactive || fail "$u is '$(unit_state "$u")' right after install, expected inactive"
    done
    local sock
    sock=$(ct stat -c '%a %U %G %F' /run/pure-ftpwho.sock) || fail "/run/pure-ftpwho.sock missing"
    [ "$sock" = "660 root ftpwho socket" ] || fail "/run/pure-ftpwho.sock is '$sock', expected '660 root ftpwho socket'"
    ct dpkg-query -L "$PKG_NAME" >/dev/null
    cts 'dpkg-query -L "$1" > "$2/files.installed"' "$PKG_NAME" "$STATE"
}

# ---------------------------------------------------------------------------
case_path_activation() {
    require_package
    stop_ftpd
    unit_is "$READER_PATH_UNIT" active || fail "$READER_PATH_UNIT is not active"
    if ! unit_is "$READER_UNIT" inactive; then
        note "$READER_UNIT is $(unit_state "$READER_UNIT"); stopping it and removing the pipe"
        ct systemctl stop "$READER_UNIT"
        ct rm -f "$FIFO"
    fi
    local t0 dt pid exe
    t0=$(date +%s%N)
    start_ftpd
    wait_until 10 "an FTP login after starting pure-ftpd -o (the reader should be path-activated)" ftp_login
    dt=$((($(date +%s%N) - t0) / 1000000))
    note "first login ${dt} ms after starting pure-ftpd -o"
    unit_is "$READER_UNIT" active || fail "$READER_UNIT is $(unit_state "$READER_UNIT")"
    pid=$(main_pid "$READER_UNIT")
    exe=$(ct readlink "/proc/$pid/exe")
    [ "$exe" = /usr/sbin/pure-uploadscript ] || fail "reader's executable is $exe"
    [ "$(unit_prop "$READER_UNIT" Type)" = notify ] || fail "$READER_UNIT is not Type=notify"
    note "status: $(unit_prop "$READER_UNIT" StatusText)"
    ct journalctl -q --no-pager -u "$READER_PATH_UNIT" | tail -3 | sed 's/^/    /'
}

# ---------------------------------------------------------------------------
case_upload_audit() {
    require_package
    ensure_ftpd
    unit_is "$READER_UNIT" active || fail "$READER_UNIT is $(unit_state "$READER_UNIT")"
    local -a names=("audit-plain.txt" "audit with  spaces.txt" "audit-ünïcødé-файл-日本.bin" "audit empty")
    local -a sizes=(1234 4096 777 0)
    local -a files=()
    local i
    for i in "${!names[@]}"; do
        make_file "$SRC/audit" "${names[$i]}" "${sizes[$i]}"
        upload "$SRC/audit/${names[$i]}"
        files+=("$FTP_HOME/${names[$i]}")
    done
    wait_processed 15 "${files[@]}"
    expect_processed_once "${files[@]}"

    local json ftp_uid ftp_gid hook_uid hook_gid entry call
    json=$(processed_json)
    ftp_uid=$(id_of "$FTP_USER")
    ftp_gid=$(gid_of "$FTP_USER")
    hook_uid=$(id_of "$HOOK_USER")
    hook_gid=$(gid_of "$HOOK_USER")
    for i in "${!files[@]}"; do
        entry=$(jq -c --arg f "${files[$i]}" 'select(.UPLOAD_FILE == $f)' <<<"$json")
        jq -e --arg vuser "$FTP_USER" --arg size "${sizes[$i]}" \
            --arg uid "$ftp_uid" --arg gid "$ftp_gid" '
            .MESSAGE_ID == "'"$MID_PROCESSED"'" and .UPLOAD_VUSER == $vuser
            and .UPLOAD_SIZE == $size and .UPLOAD_UID == $uid and .UPLOAD_GID == $gid
            and .SCRIPT_EXIT_STATUS == "0"
            and (.SCRIPT_DURATION_USEC | test("^[0-9]+$"))
            and ._SYSTEMD_UNIT == "'"$READER_UNIT"'"' <<<"$entry" >/dev/null ||
            fail "journal entry for ${files[$i]} lacks a documented field or has a wrong value: $entry"
        call=$(hook_calls "${files[$i]}")
        [ "$(grep -c . <<<"$call")" = 1 ] || fail "upload program ran $(grep -c . <<<"$call") times for ${files[$i]}"
        jq -e --argjson uid "$hook_uid" --argjson gid "$hook_gid" --arg vuser "$FTP_USER" \
            --arg size "${sizes[$i]}" \
            '.argc == 1 and .uid == $uid and .gid == $gid and .vuser == $vuser and .size == $size' \
            <<<"$call" >/dev/null || fail "upload program ran with unexpected argv/ids/variables: $call"
        if jq -e '.env | test("(^| )(NOTIFY_SOCKET|LISTEN_FDS|LISTEN_FDNAMES|WATCHDOG_USEC|WATCHDOG_PID|INVOCATION_ID|JOURNAL_STREAM) ")' \
            <<<"$call" >/dev/null; then
            fail "upload program inherited the service's environment: $(jq -r .env <<<"$call")"
        fi
    done
    note "example entry: $(jq -c 'select(.UPLOAD_FILE == "'"${files[2]}"'") | with_entries(select(.key | test("^(MESSAGE_ID|UPLOAD_|SCRIPT_)")))' <<<"$json")"
}

# ---------------------------------------------------------------------------
case_watchdog() {
    require_package
    ensure_ftpd
    unit_is "$READER_UNIT" active || fail "$READER_UNIT is $(unit_state "$READER_UNIT")"
    local wd restart old restarts0 t0 dt i
    local -a files=()
    wd=$(span_secs "$(unit_prop "$READER_UNIT" WatchdogUSec)")
    restart=$(span_secs "$(unit_prop "$READER_UNIT" RestartUSec)")
    [ "$wd" -gt 0 ] || fail "$READER_UNIT has no WatchdogSec="
    note "WatchdogSec=${wd}s RestartSec=${restart}s"
    old=$(main_pid "$READER_UNIT")
    restarts0=$(unit_prop "$READER_UNIT" NRestarts)
    t0=$SECONDS
    ct kill -STOP "$old"
    note "reader $old stopped; uploading while it is frozen"
    for i in 1 2 3; do
        make_file "$SRC/watchdog" "while-frozen-$i.dat" $((i * 1000))
        upload "$SRC/watchdog/while-frozen-$i.dat"
        files+=("$FTP_HOME/while-frozen-$i.dat")
    done
    wait_until $((wd + restart + 15)) "systemd to kill and restart the frozen reader" \
        main_pid_changed "$READER_UNIT" "$old"
    dt=$((SECONDS - t0))
    note "restarted after ${dt}s as pid $(main_pid "$READER_UNIT")"
    [ "$(unit_prop "$READER_UNIT" NRestarts)" -gt "$restarts0" ] || fail "NRestarts did not increase"
    ct journalctl -q --no-pager -u "$READER_UNIT" --since "-$((dt + 5))s" | grep -i 'watchdog timeout' >/dev/null ||
        fail "systemd did not log a watchdog timeout for $READER_UNIT"
    if ct kill -0 "$old" 2>/dev/null; then fail "the frozen reader $old still exists"; fi
    wait_processed 20 "${files[@]}"
    expect_processed_once "${files[@]}"
}

# ---------------------------------------------------------------------------
case_crash_without_loss() {
    require_package
    ensure_ftpd
    unit_is "$READER_UNIT" active || fail "$READER_UNIT is $(unit_state "$READER_UNIT")"
    local n=40 i k pid restarts0 spid since ftpd_pid name slow=stream-12-slow.dat
    local -a files=()
    # Upload 12 keeps the program busy for 2 s: the second kill lands while
    # the reader is in the middle of a record.
    for i in $(seq -w 1 $n); do
        name=stream-$i.dat
        [ "$i" = 12 ] && name=$slow
        files+=("$FTP_HOME/$name")
        make_file "$SRC/stream" "$name" $((RANDOM % 5000))
    done
    restarts0=$(unit_prop "$READER_UNIT" NRestarts)
    ftpd_pid=$(main_pid "$FTPD_UNIT")
    since=$(ct date '+%Y-%m-%d %H:%M:%S')
    note "streaming $n uploads"
    cts 'for f in "$1"/stream-*.dat; do
             curl -sS --max-time 20 -T "$f" "$2" || echo "UPLOAD FAILED: $f"
             sleep 0.1
         done
         echo STREAM DONE' "$SRC/stream" "$(ftp_url)" >"$E2E_WORK/stream.log" 2>&1 &
    spid=$!
    for k in 1 2 3; do
        if [ "$k" = 2 ]; then
            wait_until 20 "the upload program to run for $slow" \
                ct pgrep -f -- "e2e-upload-hook .*/$slow"
        else
            sleep 1
        fi
        pid=$(main_pid "$READER_UNIT")
        [ "$pid" != 0 ] || fail "reader has no MainPID before kill $k"
        ct kill -KILL "$pid"
        note "kill -9 $pid ($k/3$([ "$k" = 2 ] && echo ", while the program runs for $slow"))"
        wait_until 15 "systemd to restart the reader after kill $k" main_pid_changed "$READER_UNIT" "$pid"
    done
    if ! kill -0 "$spid" 2>/dev/null; then note "(the upload stream ended before the third kill)"; fi
    local log=$E2E_WORK/stream.log
    wait "$spid" || fail "the upload stream failed: $(tail -3 "$log")"
    grep -q 'STREAM DONE' "$log" || fail "the upload stream did not finish: $(tail -3 "$log")"
    if grep 'UPLOAD FAILED' "$log"; then fail "some uploads failed while the reader was killed"; fi
    [ "$(unit_prop "$READER_UNIT" NRestarts)" -ge $((restarts0 + 3)) ] || fail "NRestarts grew by less than 3"
    wait_processed 30 "${files[@]}"
    expect_processed_once "${files[@]}"
    [ "$(main_pid "$FTPD_UNIT")" = "$ftpd_pid" ] || fail "pure-ftpd's main process changed"
    if ct journalctl -q --no-pager -u "$FTPD_UNIT" --since "$since" | grep -Ei 'broken pipe|EPIPE|SIGPIPE'; then
        fail "pure-ftpd logged a broken pipe"
    fi
}

# ---------------------------------------------------------------------------
# The live download session of a rate-limited curl, as seen by ftpwho tools.
who_dl_line() {
    grep -E "^[0-9]+\|$FTP_USER\|[0-9]+\| *DL *\|[^|]*who-download\.bin"
}

case_socket_activation() {
    require_package
    ensure_ftpd
    unit_is "$WHO_SOCKET_UNIT" active || fail "$WHO_SOCKET_UNIT is not active"
    [ "$(unit_prop "$WHO_UNIT" InactiveExitTimestampMonotonic)" = 0 ] ||
        fail "$WHO_UNIT already ran before the first query"
    unit_is "$WHO_UNIT" inactive || fail "$WHO_UNIT is $(unit_state "$WHO_UNIT") before the first query"
    ct usermod -a -G ftpwho "$WHO_USER"

    # Large and slow enough to outlast the socket buffers and the checks.
    cts 'truncate -s 64M "$1/who-download.bin"; chown "$2:" "$1/who-download.bin"' \
        "$FTP_HOME" "$FTP_USER"
    ct systemctl reset-failed e2e-download.service 2>/dev/null || true
    ct systemd-run --quiet --unit=e2e-download --property=RuntimeMaxSec=120 \
        curl -sS --limit-rate 50k -o /dev/null "$(ftp_url who-download.bin)"
    local c_who
    c_who=$(ct dpkg-divert --truename /usr/sbin/pure-ftpwho)
    wait_until 15 "Debian's pure-ftpwho (as root) to show the download" \
        cts '"$1" -s | grep -Eq "\|$2\|[0-9]+\| *DL *\|"' "$c_who" "$FTP_USER"

    local out rc json root_line c_line q_line
    out=$(ct -u "$WHO_USER" ftpwho-query -s) || fail "ftpwho-query -s as $WHO_USER (group ftpwho) failed: exit $?"
    [ "$(unit_prop "$WHO_UNIT" InactiveExitTimestampMonotonic)" != 0 ] ||
        fail "$WHO_UNIT was not started by the first query"
    note "ftpwho-query -s as $WHO_USER: $out"
    q_line=$(who_dl_line <<<"$out") || fail "ftpwho-query -s does not show the live download: $out"
    root_line=$(ct pure-ftpwho -s | who_dl_line) || fail "pure-ftpwho -s (root) does not show the download"
    c_line=$(ct "$c_who" -s | who_dl_line) || fail "Debian's pure-ftpwho -s does not show the download"
    # Compare what does not move between two looks: pid, account, state, file, peers.
    local stable='{print $1 "|" $2 "|" $4 "|" $5 "|" $6 "|" $7 "|" $8 "|" $10}'
    [ "$(awk -F'|' "$stable" <<<"$q_line")" = "$(awk -F'|' "$stable" <<<"$root_line")" ] ||
        fail "ftpwho-query -s and pure-ftpwho -s differ: '$q_line' vs '$root_line'"
    [ "$(awk -F'|' "$stable" <<<"$q_line")" = "$(awk -F'|' "$stable" <<<"$c_line")" ] ||
        fail "ftpwho-query -s and Debian's pure-ftpwho -s differ: '$q_line' vs '$c_line'"

    json=$(ct -u "$WHO_USER" ftpwho-query --json) || fail "ftpwho-query --json as $WHO_USER failed: exit $?"
    note "ftpwho-query --json: $json"
    # One object per session with typed fields (account, state, pid, file, ...).
    jq -e --arg u "$FTP_USER" --argjson pid "$(cut -d'|' -f1 <<<"$q_line")" '
        [.. | objects | select(.account == $u and .state == "download" and .pid == $pid
            and (.file | tostring | test("who-download\\.bin$")))] | length == 1' \
        <<<"$json" >/dev/null ||
        fail "ftpwho-query --json does not show the download session (pid, account, state, file) of $FTP_USER"

    rc=0
    out=$(ct -u "$OUT_USER" ftpwho-query -s 2>&1) || rc=$?
    note "as $OUT_USER (not in ftpwho): exit $rc: $out"
    [ "$rc" = 4 ] || fail "a user outside group ftpwho got exit code $rc, expected 4 (permission denied)"

    ct systemctl stop e2e-download.service 2>/dev/null || true
    ct systemctl reset-failed e2e-download.service 2>/dev/null || true
    wait_until 15 "$WHO_UNIT to exit after its idle time (3 s)" unit_is "$WHO_UNIT" inactive
    [ "$(unit_prop "$WHO_UNIT" Result)" = success ] || fail "$WHO_UNIT ended with result $(unit_prop "$WHO_UNIT" Result)"
    unit_is "$WHO_SOCKET_UNIT" active || fail "$WHO_SOCKET_UNIT is no longer listening"
    ct -u "$WHO_USER" ftpwho-query -s >/dev/null || fail "a query after the idle exit failed"
    note "responder started again on demand"
}

# ---------------------------------------------------------------------------
# check_sandbox UNIT PID: the sandbox settings UNIT declares are in effect
# for the running process PID.
check_sandbox() {
    local unit=$1 pid=$2 props status ps
    props=$(ct systemctl show -p User,DynamicUser,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,PrivateNetwork,PrivateDevices,CapabilityBoundingSet,AmbientCapabilities,SystemCallFilter,ReadWritePaths "$unit")
    prop() { awk -F= -v k="$1" '$1 == k {sub(/^[^=]*=/, ""); print}' <<<"$props"; }
    status=$(ct cat "/proc/$pid/status")
    note "$unit (pid $pid): $(grep -E '^(Uid|Gid|NoNewPrivs|Seccomp|CapEff|CapBnd):' <<<"$status" | tr -s '\t\n' '  ')"
    grep -E '^(NoNewPrivileges|ProtectSystem|ProtectHome|PrivateTmp|PrivateNetwork|PrivateDevices|DynamicUser|User)=' <<<"$props" |
        tr '\n' ' ' | sed 's/^/    /'
    echo
    in_ns() { ct nsenter -t "$pid" -m "$@"; }
    writable() { in_ns sh -c 'touch "$1/.e2e-probe" 2>/dev/null && rm -f "$1/.e2e-probe"' _ "$1"; }
    # Whether a ReadWritePaths= entry opens DIR (or a parent of it).
    opened() {
        local p
        for p in $(prop ReadWritePaths); do
            p=${p#-}
            case "$1/" in "${p%/}/"*) return 0 ;; esac
        done
        return 1
    }

    if [ "$(prop NoNewPrivileges)" = yes ]; then
        grep -Eq '^NoNewPrivs:\s+1' <<<"$status" || fail "$unit declares NoNewPrivileges= but the process lacks no_new_privs"
    fi
    if [ -n "$(prop SystemCallFilter)" ]; then
        grep -Eq '^Seccomp:\s+2' <<<"$status" || fail "$unit declares SystemCallFilter= but no seccomp filter is active"
    fi
    ps=$(prop ProtectSystem)
    case "$ps" in
        yes | full | strict)
            if writable /usr; then fail "$unit declares ProtectSystem=$ps but /usr is writable in its namespace"; fi
            ;;&
        full | strict)
            if writable /etc; then fail "$unit declares ProtectSystem=$ps but /etc is writable in its namespace"; fi
            ;;&
        strict)
            local d
            for d in /var /var/lib /run /srv /opt; do
                in_ns test -d "$d" || continue
                opened "$d" && continue
                if writable "$d"; then
                    fail "$unit declares ProtectSystem=strict but $d is writable in its namespace (ReadWritePaths=$(prop ReadWritePaths))"
                fi
            done
            ;;
    esac
    case "$(prop ProtectHome)" in
        yes | tmpfs)
            if in_ns test -e "/home/$WHO_USER/.bashrc"; then
                fail "$unit declares ProtectHome= but /home/$WHO_USER is visible"
            fi
            ;;
        read-only)
            if writable "/home/$WHO_USER"; then fail "$unit declares ProtectHome=read-only but /home is writable"; fi
            ;;
    esac
    if [ "$(prop PrivateTmp)" = yes ]; then
        ct touch /tmp/.e2e-private-tmp-probe
        if in_ns test -e /tmp/.e2e-private-tmp-probe; then fail "$unit declares PrivateTmp= but shares /tmp"; fi
    fi
    if [ "$(prop PrivateNetwork)" = yes ]; then
        [ "$(ct readlink "/proc/$pid/ns/net")" != "$(ct readlink /proc/1/ns/net)" ] ||
            fail "$unit declares PrivateNetwork= but shares the network namespace"
    fi
    # caps FIELD: the capability names of a /proc/PID/status field, sorted.
    caps() {
        ct capsh --decode="$(awk -v f="$1:" '$1 == f {print $2}' <<<"$status")" |
            sed 's/^.*=//' | tr ',' '\n' | grep . | sort | tr '\n' ' '
    }
    names() { tr ' ' '\n' <<<"$1" | grep . | sort | tr '\n' ' '; }
    local bnd amb
    bnd=$(prop CapabilityBoundingSet)
    if [ -n "$bnd" ]; then
        [ "$(caps CapBnd)" = "$(names "$bnd")" ] ||
            fail "$unit's bounding set at run time ($(caps CapBnd)) differs from CapabilityBoundingSet= ($bnd)"
    fi
    amb=$(prop AmbientCapabilities)
    if [ -n "$amb" ] && ! grep -Eq '^Uid:\s+0\s' <<<"$status"; then
        [ "$(caps CapEff)" = "$(names "$amb")" ] ||
            fail "$unit's effective capabilities ($(caps CapEff)) differ from AmbientCapabilities= ($amb)"
    fi
}

case_hardening() {
    require_package
    ensure_ftpd
    unit_is "$READER_UNIT" active || fail "$READER_UNIT is $(unit_state "$READER_UNIT")"
    local rpid wpid uid score u
    local bound
    for u in "$READER_UNIT" "$WHO_UNIT"; do
        bound=2.0
        [ "$u" = "$READER_UNIT" ] && bound=1.0
        score=$(ct systemd-analyze security --no-pager "$u" |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        note "systemd-analyze security $u: $score"
        awk -v s="$score" -v b="$bound" 'BEGIN { exit !(s != "" && s <= b) }' ||
            fail "$u has exposure level '$score' at run time, above $bound"
    done

    rpid=$(main_pid "$READER_UNIT")
    check_sandbox "$READER_UNIT" "$rpid"
    # The upload program still writes where its drop-in allows.
    make_file "$SRC/hardening" hardening-probe.txt 100
    upload "$SRC/hardening/hardening-probe.txt"
    wait_until 15 "the upload program to record hardening-probe.txt in $HOOK_DIR" \
        hook_called "$FTP_HOME/hardening-probe.txt"
    ct nsenter -t "$rpid" -m sh -c 'touch "$1/.e2e-probe" && rm "$1/.e2e-probe"' _ "$HOOK_DIR" ||
        fail "$HOOK_DIR (ReadWritePaths= of the drop-in) is not writable in the reader's namespace"

    ct -u "$WHO_USER" ftpwho-query --json >/dev/null || fail "ftpwho-query --json failed"
    wpid=$(main_pid "$WHO_UNIT")
    [ "$wpid" != 0 ] || fail "$WHO_UNIT has no running process right after a query"
    uid=$(ct awk '/^Uid:/ {print $2}' "/proc/$wpid/status")
    [ "$uid" != 0 ] || fail "the responder runs as root"
    [ "$(unit_prop "$WHO_UNIT" ProtectSystem)" = strict ] || fail "$WHO_UNIT does not use ProtectSystem=strict"
    check_sandbox "$WHO_UNIT" "$wpid"
}

# ---------------------------------------------------------------------------
case_package_lifecycle() {
    require_package
    ensure_ftpd
    local u st f owner
    cts 'dpkg-query -L "$1" > "$2/files.installed"' "$PKG_NAME" "$STATE"
    ct -u "$WHO_USER" ftpwho-query -s >/dev/null || true
    note "apt-get remove $PKG_NAME (reader and responder running)"
    ct -t 120 env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q "$PKG_NAME" ||
        fail "apt-get remove failed"
    for u in "$READER_UNIT" "$READER_PATH_UNIT" "$WHO_UNIT" "$WHO_SOCKET_UNIT"; do
        st=$(unit_state "$u")
        case "$st" in
            inactive | failed) ;;
            *) fail "$u is '$st' after removal" ;;
        esac
    done
    if cts 'for p in /proc/[0-9]*; do readlink "$p/exe"; done 2>/dev/null | grep -E "/(pure-uploadscript|ftpwhod)( \(deleted\))?$"'; then
        fail "a daemon of the package still runs after removal"
    fi

    stop_ftpd
    # The suite's own drop-ins belong to the administrator, not the package.
    ct rm -rf /etc/systemd/system/pure-uploadscript.service.d/50-e2e.conf \
        /etc/pure-uploadscript.d/50-e2e.toml /etc/ftpwhod.d/50-e2e.toml
    ct rmdir --ignore-fail-on-non-empty /etc/systemd/system/pure-uploadscript.service.d \
        /etc/pure-uploadscript.d /etc/ftpwhod.d 2>/dev/null || true
    note "dpkg -P $PKG_NAME"
    ct -t 120 env DEBIAN_FRONTEND=noninteractive dpkg -P "$PKG_NAME" || fail "dpkg -P failed"
    ct systemctl daemon-reload
    st=$(ct dpkg-query -W -f='${Status}' "$PKG_NAME" 2>/dev/null || true)
    case "$st" in "" | *not-installed*) ;; *) fail "package status after purge: $st" ;; esac

    local left
    left=$(ct find /etc/systemd /lib/systemd /usr/lib/systemd /run/systemd/system \
        \( -name 'pure-uploadscript*' -o -name 'uploadscript@*' -o -name 'pure-ftpwho*' \) 2>/dev/null || true)
    [ -z "$left" ] || fail "unit files left after purge: $left"
    # systemd unloads units it has no reference to left at its next garbage
    # collection, which units restarted shortly before (the Debian case
    # restarts the reader several times) may delay by up to a minute.
    loaded_units() { ct systemctl list-units --all --no-legend --plain 'pure-uploadscript*' 'uploadscript@*' 'pure-ftpwho*' || true; }
    no_units_loaded() { [ -z "$(loaded_units)" ]; }
    local t
    for ((t = 0; t < 375; t++)); do
        no_units_loaded && break
        sleep 0.2
    done
    left=$(loaded_units)
    [ -z "$left" ] || fail "units still loaded after purge: $left"
    # Files the package shipped that still exist and no other package owns
    # (directories and Debian's files restored from the diversions are fine).
    left=$(cts 'while IFS= read -r f; do
                    [ -d "$f" ] && continue
                    [ -e "$f" ] || [ -L "$f" ] || continue
                    dpkg-query -S "$f" >/dev/null 2>&1 && continue
                    echo "$f"
                done < "$1/files.installed"' "$STATE")
    [ -z "$left" ] || fail "files of the package left after purge: $left"
    left=$(ct dpkg-divert --list | grep -F "$PKG_NAME" || true)
    [ -z "$left" ] || fail "diversions left after purge: $left"
    for f in /usr/sbin/pure-ftpwho /usr/sbin/pure-uploadscript; do
        owner=$(ct dpkg-query -S "$f" | awk -F': ' '{print $1}')
        [ "$owner" = pure-ftpd ] || fail "$f belongs to '$owner' after purge, expected pure-ftpd"
    done
    left=$(ct dpkg --verify pure-ftpd || true)
    [ -z "$left" ] || fail "Debian's pure-ftpd files differ after purge: $left"
    left=$(cts 'cut -d: -f1 /etc/passwd | sort | comm -13 "$1/passwd.before" -' "$STATE")
    [ -z "$left" ] || fail "users left after purge: $left"
    left=$(cts 'cut -d: -f1 /etc/group | sort | comm -13 "$1/group.before" -' "$STATE")
    [ -z "$left" ] || fail "groups left after purge: $left"
    ct test ! -e /run/pure-ftpwho.sock || fail "/run/pure-ftpwho.sock left after purge"
}

# ---------------------------------------------------------------------------
# Runs in units of their own (pure-uploadscript-run@.service).

RUN_SOCKET_UNIT=pure-uploadscript-run.socket
MID_FAILED=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a62
MID_TIMED_OUT=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a63
MID_REJECTED=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a61
E2E_CONF=/etc/pure-uploadscript.d/50-e2e.toml
CASE_CONF=/etc/pure-uploadscript.d/60-case.toml

# restart_reader: the reader exits on SIGTERM and systemd starts it again
# with the pipe from its descriptor store (it reads its settings at start).
restart_reader() {
    local old
    old=$(main_pid "$READER_UNIT")
    ct systemctl kill --kill-who=main --signal=SIGTERM "$READER_UNIT"
    wait_until 20 "$READER_UNIT to come back after SIGTERM" main_pid_changed "$READER_UNIT" "$old"
}

# use_config TEXT: the reader and its runs use TEXT (plus the package's
# file) instead of the suite's 50-e2e.toml; `use_config` alone restores it.
use_config() {
    if [ $# = 0 ]; then
        ct rm -f "$CASE_CONF"
        ct test -e "$E2E_CONF" || ct mv "$E2E_CONF.off" "$E2E_CONF"
    else
        ct test ! -e "$E2E_CONF" || ct mv "$E2E_CONF" "$E2E_CONF.off"
        printf '%s\n' "$1" | ct_write "$CASE_CONF" 0644
    fi
    restart_reader
}

# audit_of FILE [MESSAGE_ID]: the reader's audit entries for FILE (JSON lines).
audit_of() {
    ct journalctl --no-pager -q -o json -u "$READER_UNIT" "UPLOAD_FILE=$1" ${2:+"MESSAGE_ID=$2"}
}

has_audit() { [ -n "$(audit_of "$@")" ]; }

# upload_one NAME SIZE: uploads a fresh file NAME; prints its path on the server.
upload_one() {
    make_file "$SRC/runs" "$1" "$2"
    upload "$SRC/runs/$1"
    echo "$FTP_HOME/$1"
}

case_everyday_actions() {
    require_package
    ensure_ftpd
    unit_is "$RUN_SOCKET_UNIT" active || fail "$RUN_SOCKET_UNIT is $(unit_state "$RUN_SOCKET_UNIT")"
    # An HTTP endpoint on 127.0.0.1: a socket unit and a shell that logs the
    # request line.
    ct_write /etc/systemd/system/e2e-webhook.socket 0644 <<'EOF2'
[Socket]
ListenStream=127.0.0.1:8099
Accept=yes
EOF2
    ct_write /etc/systemd/system/e2e-webhook@.service 0644 <<'EOF2'
[Service]
StandardInput=socket
StandardOutput=socket
ExecStart=/bin/sh -c 'read -r line; echo "$line" >> /var/lib/e2e-webhook.log; printf "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"'
EOF2
    ct systemctl daemon-reload
    ct systemctl start e2e-webhook.socket
    # The eight things upload programs do, as a new user writes them.
    ct_write /usr/local/bin/e2e-everyday 0755 <<'EOF2'
#!/bin/sh
set -e
f=$1
base=$(basename "$f")
logger -t e2e-everyday "syslog: $base"
echo "$base" >> /var/log/e2e-everyday.log
echo "$base" > "/tmp/e2e-everyday-$base"
chmod 0640 "$f"
chown e2ehook "$f"
curl -fsS --max-time 5 "http://127.0.0.1:8099/hook?file=$base" > /dev/null
mkdir -p /srv/e2e-archive
cp "$f" /srv/e2e-archive/
mv "$f" "$f.done"
echo "everyday done: $base uid $(id -u)"
echo "a warning on stderr: $base" >&2
EOF2
    use_config 'run = "/usr/local/bin/e2e-everyday"'
    note "reader: $(ct journalctl -q --no-pager -u "$READER_UNIT" -n 1 -o cat)"
    local f base json entry unit
    f=$(upload_one everyday-1.txt 2000)
    base=${f##*/}
    wait_until 20 "a processed audit entry for $f" has_audit "$f" "$MID_PROCESSED"
    entry=$(audit_of "$f" "$MID_PROCESSED" | tail -n 1)
    note "audit: $(jq -c 'with_entries(select(.key | test("^(UPLOAD_|SCRIPT_)")))' <<<"$entry")"
    unit=$(jq -r .SCRIPT_UNIT <<<"$entry")
    [[ "$unit" == pure-uploadscript-run@*.service ]] || fail "SCRIPT_UNIT is '$unit'"
    jq -e '(.SCRIPT_CPU_USEC | test("^[0-9]+$")) and (.SCRIPT_MEMORY_PEAK | test("^[1-9][0-9]*$"))' \
        <<<"$entry" >/dev/null || fail "no CPU time or peak memory in the audit: $entry"
    # 1 syslog, 2 /var/log, 3 /tmp, 4 chmod, 5 chown, 6 webhook, 7 /srv, 8 rename.
    ct journalctl -q --no-pager -t e2e-everyday | grep "syslog: $base" >/dev/null || fail "1: nothing in syslog"
    ct grep -qx "$base" /var/log/e2e-everyday.log || fail "2: /var/log/e2e-everyday.log lacks $base"
    ct grep -qx "$base" "/tmp/e2e-everyday-$base" || fail "3: /tmp/e2e-everyday-$base is not visible"
    [ "$(ct stat -c %a "$f.done")" = 640 ] || fail "4: mode of the upload is $(ct stat -c %a "$f.done")"
    [ "$(ct stat -c %U "$f.done")" = e2ehook ] || fail "5: owner of the upload is $(ct stat -c %U "$f.done")"
    ct grep -q "GET /hook?file=$base " /var/lib/e2e-webhook.log || fail "6: the webhook was not called"
    ct cmp -s "$SRC/runs/$base" "/srv/e2e-archive/$base" || fail "7: no copy under /srv"
    ct test ! -e "$f" || fail "8: the upload was not renamed"
    # The program's own output, found by the upload's name.
    json=$(ct journalctl --no-pager -q -o json "UPLOAD_FILE=$f" SCRIPT_STREAM=stdout)
    jq -e --arg u "$unit" 'select(.MESSAGE | test("everyday done: .* uid 0")) | select(._SYSTEMD_UNIT == $u)' \
        <<<"$json" >/dev/null || fail "the program's stdout is not in the journal under UPLOAD_FILE=$f and its unit: $json"
    ct journalctl --no-pager -q -o cat "UPLOAD_FILE=$f" SCRIPT_STREAM=stderr | grep "a warning on stderr" >/dev/null ||
        fail "the program's stderr is not in the journal"
    note "journalctl UPLOAD_FILE=$f: $(ct journalctl --no-pager -q -o cat "UPLOAD_FILE=$f" | tr '\n' '|')"
}

case_strict_profile() {
    require_package
    ensure_ftpd
    ct_write /usr/local/bin/e2e-strict 0755 <<'EOF2'
#!/bin/sh
if touch /srv/e2e-strict-probe 2>/dev/null; then echo "write /srv: allowed"; else echo "write /srv: denied"; fi
if echo x >> /var/log/e2e-strict.log 2>/dev/null; then echo "write /var/log: allowed"; else echo "write /var/log: denied"; fi
if curl -fsS --max-time 3 http://127.0.0.1:8099/strict > /dev/null 2>&1; then echo "network: allowed"; else echo "network: denied"; fi
echo "caps: $(awk '/^CapEff/ {print $2}' /proc/self/status) $(awk '/^CapBnd/ {print $2}' /proc/self/status)"
cat < /dev/fd/3 > /dev/null && echo "upload fd: readable"
EOF2
    ct systemctl start pure-uploadscript-run-strict.socket
    use_config 'run = "/usr/local/bin/e2e-strict"
profile = "strict"'
    local f out
    f=$(upload_one strict-1.txt 100)
    wait_until 20 "a processed audit entry for $f" has_audit "$f" "$MID_PROCESSED"
    out=$(ct journalctl --no-pager -q -o cat "UPLOAD_FILE=$f" SCRIPT_STREAM=stdout)
    note "strict program said: $(tr '\n' '|' <<<"$out")"
    [[ "$(audit_of "$f" "$MID_PROCESSED" | jq -r .SCRIPT_UNIT)" == pure-uploadscript-run-strict@* ]] ||
        fail "the run was not in pure-uploadscript-run-strict@.service"
    grep -qx "write /srv: denied" <<<"$out" || fail "strict profile let the program write /srv"
    grep -qx "write /var/log: denied" <<<"$out" || fail "strict profile let the program write /var/log"
    grep -qx "network: denied" <<<"$out" || fail "strict profile let the program reach 127.0.0.1"
    grep -qx "caps: 0000000000000000 0000000000000000" <<<"$out" || fail "the program has capabilities: $out"
    grep -qx "upload fd: readable" <<<"$out" || fail "the program could not read UPLOAD_FD"
    ct test ! -e /srv/e2e-strict-probe || fail "/srv/e2e-strict-probe exists"
    use_config
}

case_run_timeout() {
    require_package
    ensure_ftpd
    ct_write /usr/local/bin/e2e-daemonizer 0755 <<'EOF2'
#!/bin/sh
# Leaves a double-forked daemon behind, then either exits or hangs.
(setsid sleep 3101 < /dev/null > /dev/null 2>&1 &)
case "$1" in *hang*) exec sleep 3102 ;; esac
exit 0
EOF2
    use_config 'run = "/usr/local/bin/e2e-daemonizer"
timeout = "3s"'
    local done hang entry
    done=$(upload_one daemon-exits.txt 10)
    wait_until 20 "a processed audit entry for $done" has_audit "$done" "$MID_PROCESSED"
    hang=$(upload_one daemon-hang.txt 10)
    wait_until 30 "a timed-out audit entry for $hang" has_audit "$hang" "$MID_TIMED_OUT"
    entry=$(audit_of "$hang" "$MID_TIMED_OUT")
    note "timeout audit: $(jq -c '{SCRIPT_UNIT, SCRIPT_SIGNAL, SCRIPT_TIMEOUT_USEC, SCRIPT_DURATION_USEC}' <<<"$entry")"
    jq -e '.SCRIPT_TIMEOUT_USEC == "3000000"' <<<"$entry" >/dev/null || fail "SCRIPT_TIMEOUT_USEC: $entry"
    sleep 1
    if ct pgrep -af 'sleep 310[12]'; then fail "processes of the runs are left"; fi
    use_config
}

case_memory_limit() {
    require_package
    ensure_ftpd
    ct_write /usr/local/bin/e2e-hog 0755 <<'EOF2'
#!/bin/sh
# tail keeps an unterminated last line in memory: 600 MiB of it.
head -c 600M /dev/zero | tail -n 1 > /dev/null
EOF2
    use_config 'run = "/usr/local/bin/e2e-hog"
memory_max = "64M"'
    local f entry
    f=$(upload_one hog.bin 10)
    wait_until 30 "a failed audit entry for $f" has_audit "$f" "$MID_FAILED"
    entry=$(audit_of "$f" "$MID_FAILED")
    note "memory audit: $(jq -c '{MESSAGE, SCRIPT_LIMIT, SCRIPT_SIGNAL, SCRIPT_MEMORY_PEAK, SCRIPT_UNIT}' <<<"$entry")"
    jq -e '.SCRIPT_LIMIT == "memory" and .SCRIPT_SIGNAL == "9" and (.MESSAGE | test("memory limit"))' \
        <<<"$entry" >/dev/null || fail "the audit does not say the memory limit killed it: $entry"
    if ct pgrep -af 'head -c 600M'; then fail "the hog is still running"; fi
    use_config
}

case_run_unit_killed() {
    require_package
    ensure_ftpd
    local f unit entry next
    f=$(upload_one unit-kill-slow.dat 100)
    wait_until 20 "the program to run for $f" ct pgrep -f -- "e2e-upload-hook .*/unit-kill-slow.dat"
    unit=$(ct systemctl list-units --plain --no-legend 'pure-uploadscript-run@*.service' | awk '{print $1}' | head -n 1)
    [ -n "$unit" ] || fail "no run unit is active"
    ct systemctl kill --signal=SIGKILL "$unit"
    note "kill -9 of $unit"
    wait_until 20 "an audit entry for $f" has_audit "$f"
    entry=$(audit_of "$f" | tail -n 1)
    note "audit: $(jq -c '{MESSAGE_ID, SCRIPT_ERROR, SCRIPT_SIGNAL}' <<<"$entry")"
    jq -e '.MESSAGE_ID == "'"$MID_FAILED"'"' <<<"$entry" >/dev/null || fail "the killed run is not audited as failed: $entry"
    next=$(upload_one after-unit-kill.dat 100)
    wait_processed 20 "$next"
    expect_processed_once "$next"
}

case_second_reader() {
    require_package
    ensure_ftpd
    local first rc out inst
    first=$(main_pid "$READER_UNIT")
    rc=0
    out=$(ct -t 20 /usr/sbin/pure-uploadscript --pipe "$FIFO" 2>&1) || rc=$?
    note "second reader: exit $rc: $out"
    [ "$rc" = 3 ] || fail "a second reader exited with $rc, expected 3"
    grep -q "$FIFO already has a reader (pid $first)" <<<"$out" || fail "the refusal does not name the pipe and pid $first: $out"
    inst=uploadscript@$(ct systemd-escape --path "$FIFO").service
    ct systemctl start "$inst" || true
    wait_until 15 "$inst to fail" unit_is "$inst" failed
    ct journalctl -q --no-pager -u "$inst" | grep "already has a reader (pid $first)" >/dev/null ||
        fail "$inst did not say why it stopped"
    ct systemctl reset-failed "$inst" || true
    [ "$(main_pid "$READER_UNIT")" = "$first" ] || fail "the first reader changed"
    local f
    f=$(upload_one after-second-reader.txt 50)
    wait_processed 20 "$f"
    expect_processed_once "$f"
}

case_symlink_swap() {
    require_package
    ensure_ftpd
    local f=$FTP_HOME/swap/shadow entry
    # A directory of the upload tree, swapped for a link to /etc before the
    # reader gets to the record.
    ct mkdir -p "$FTP_HOME/swap"
    ct rm -rf "$FTP_HOME/swap"
    ct ln -s /etc "$FTP_HOME/swap"
    # The record as pure-ftpd writes it, for a file under the swapped directory.
    cts 'printf "\002%s\001%s\000" "$1" "$2" > "$3"' "$FTP_USER" "$f" "$FIFO"
    wait_until 15 "an audit entry for $f" has_audit "$f"
    entry=$(audit_of "$f")
    note "audit: $(jq -c '{MESSAGE_ID, REJECT_REASON, UPLOAD_SHA256, UPLOAD_SIZE}' <<<"$entry")"
    jq -e '.MESSAGE_ID == "'"$MID_REJECTED"'" and (.REJECT_REASON | test("symbolic link")) and (has("UPLOAD_SIZE") | not)' \
        <<<"$entry" >/dev/null || fail "the swapped record was not rejected for its symbolic link: $entry"
    if hook_called "$f"; then fail "the program ran on $f"; fi
    ct rm -f "$FTP_HOME/swap"
}

case_debian_uploadscript() {
    require_package
    stop_ftpd
    local i f hooks
    local -a files=()
    note "Debian's way: UPLOADSCRIPT= in /etc/default/pure-ftpd-common, pure-ftpd's init script"
    ct cp /etc/default/pure-ftpd-common "$STATE/pure-ftpd-common"
    cts 'sed -i -e "s|^STANDALONE_OR_INETD=.*|STANDALONE_OR_INETD=standalone|" \
            -e "s|^UPLOADSCRIPT=.*|UPLOADSCRIPT=$1|" -e "s|^UPLOADUID=.*|UPLOADUID=$2|" \
            -e "s|^UPLOADGID=.*|UPLOADGID=$2|" /etc/default/pure-ftpd-common
         echo yes > /etc/pure-ftpd/conf/CallUploadScript
         echo "127.0.0.1,$3" > /etc/pure-ftpd/conf/Bind
         echo yes > /etc/pure-ftpd/conf/UnixAuthentication' "$HOOK" "$HOOK_USER" "$FTP_PORT"
    ct mv "$E2E_CONF" "$E2E_CONF.off"
    ct systemctl stop "$READER_PATH_UNIT" "$READER_UNIT"
    ct rm -f "$FIFO"
    ct systemctl start "$READER_PATH_UNIT"
    ct rm -f /etc/systemd/system/pure-ftpd.service
    ct systemctl daemon-reload
    ct systemctl start pure-ftpd.service
    wait_until 20 "an FTP login to the init script's pure-ftpd" ftp_login
    for i in 1 2 3 4 5; do
        f=$(upload_one "debian-$i.txt" $((i * 100)))
        files+=("$f")
    done
    wait_processed 30 "${files[@]}"
    expect_processed_once "${files[@]}"
    for f in "${files[@]}"; do
        hooks=$(hook_calls "$f" | grep -c .)
        [ "$hooks" = 1 ] || fail "the program ran $hooks times for $f"
    done
    note "readers: $(ct pgrep -a pure-uploadscr | tr '\n' '|')"
    ct journalctl -q --no-pager -t pure-uploadscript --since -2min | grep "not starting a second reader" >/dev/null ||
        fail "the init script's reader did not leave the pipe to $READER_UNIT"
    # The init script's stop sends SIGTERM to every /usr/sbin/pure-uploadscript:
    # the service's reader exits cleanly and systemd starts it again.
    ct systemctl stop pure-ftpd.service
    wait_until 20 "$READER_UNIT to be active again" unit_is "$READER_UNIT" active
    ct ln -sfn /dev/null /etc/systemd/system/pure-ftpd.service
    ct cp "$STATE/pure-ftpd-common" /etc/default/pure-ftpd-common
    ct rm -f /etc/pure-ftpd/conf/CallUploadScript /etc/pure-ftpd/conf/Bind
    echo no | ct_write /etc/pure-ftpd/conf/UnixAuthentication 0644
    ct mv "$E2E_CONF.off" "$E2E_CONF"
    ct systemctl daemon-reload
    restart_reader
}

# ---------------------------------------------------------------------------
# Benchmark (bench/uploadscript-units.sh; runs only when named in E2E_CASES):
# time per upload with each run in a unit of its own, against the floor of
# systemd starting a trivial Accept=yes instance running /bin/true, measured
# alternately in one container. Prints "BENCH ..." lines.
case_bench_units() {
    require_package
    ensure_ftpd
    local n=${BENCH_N:-200} rounds=${BENCH_ROUNDS:-3} r
    ct_write /etc/systemd/system/e2e-floor.socket 0644 <<'EOF2'
[Socket]
ListenSequentialPacket=/run/e2e-floor.sock
SocketMode=0600
Accept=yes
MaxConnections=64
TriggerLimitIntervalSec=0
EOF2
    ct_write /etc/systemd/system/e2e-floor@.service 0644 <<'EOF2'
[Unit]
CollectMode=inactive-or-failed
[Service]
Slice=system.slice
ExecStart=/bin/true
EOF2
    ct systemctl daemon-reload
    ct systemctl start e2e-floor.socket
    ct_write /usr/local/bin/e2e-floor-client 0755 <<'EOF2'
#!/usr/bin/python3
# Connects N times, one after the other, each time until the instance ends.
import socket, sys, time
n = int(sys.argv[1])
t = time.monotonic()
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("/run/e2e-floor.sock")
    while s.recv(16):
        pass
    s.close()
print("%.3f" % ((time.monotonic() - t) * 1000 / n))
EOF2
    # Ours: N records written into the upload pipe at once; done when the
    # reader's metrics.json counts them all. Read in-process every 5 ms: a
    # poll through systemctl would cost pid1 and D-Bus more CPU than the
    # units measured (the floor's client just waits on its socket).
    ct_write /usr/local/bin/e2e-units-client 0755 <<'EOF2'
#!/usr/bin/python3
# e2e-units-client N FIFO METRICS: prints ms per upload.
import fcntl, json, os, sys, time
n, fifo, metrics = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def done():
    # The reader rewrites the file in place under an exclusive lock.
    with open(metrics) as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        m = json.load(f)
    return m["processed"] + m["rejected"] + m["failed"]
before = done()
records = b"".join(b"\x02bench\x01/srv/bench/f-%d\x00" % (i + 1) for i in range(n))
t = time.monotonic()
with open(fifo, "wb") as f:
    f.write(records)
seen = None
while True:
    mtime = os.stat(metrics).st_mtime_ns
    if mtime != seen:
        seen = mtime
        if done() >= before + n:
            break
    time.sleep(0.005)
print("%.3f" % ((time.monotonic() - t) * 1000 / n))
EOF2
    cts 'mkdir -p /srv/bench && for i in $(seq 1 "$1"); do echo "$i" > "/srv/bench/f-$i"; done' "$n"
    use_config 'run = "/bin/true"'
    # metrics.json is there once the reader has written it.
    wait_until 15 "the reader's metrics.json" ct test -s "$QUEUE_DIR/metrics.json"
    ours_round() { ct e2e-units-client "$n" "$FIFO" "$QUEUE_DIR/metrics.json"; }
    local -a floors=() ours=()
    for ((r = 1; r <= rounds; r++)); do
        floors+=("$(ct e2e-floor-client "$n")")
        ours+=("$(ours_round)")
        note "round $r: floor ${floors[-1]} ms, ours ${ours[-1]} ms per upload"
        echo "BENCH round $r floor_ms ${floors[-1]} ours_ms ${ours[-1]}"
    done
    local fm om rm
    median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    fm=$(printf '%s\n' "${floors[@]}" | median)
    om=$(printf '%s\n' "${ours[@]}" | median)
    # Each round's ratio compares two measurements taken seconds apart.
    rm=$(for ((r = 0; r < rounds; r++)); do
        awk -v a="${ours[$r]}" -v b="${floors[$r]}" 'BEGIN { printf "%.3f\n", a / b }'
    done | median)
    echo "BENCH median floor_ms $fm ours_ms $om ratio_of_medians $(awk -v a="$om" -v b="$fm" 'BEGIN { printf "%.2f", a / b }') median_round_ratio $rm n $n rounds $rounds load $(cut -d' ' -f1-3 /proc/loadavg)"
    use_config
}

# ---------------------------------------------------------------------------
# The durable queue. Files named *-slow.* keep the program busy for 2 s, so a
# stream of uploads builds a backlog in the queue (pure-ftpd's sessions do not
# wait for it). Runs are counted per file in the program's own log.
QUEUE_CONF=/etc/pure-uploadscript.d/70-queue.toml
QUEUE_DIR=/var/lib/pure-uploadscript

# queue_config TEXT: the suite's configuration plus TEXT for the queue
# (restarts the reader); without TEXT, the suite's configuration alone.
queue_config() {
    # The suite's own program and settings (a case before may have left
    # others).
    ct rm -f "$CASE_CONF"
    ct test -e "$E2E_CONF" || ct mv "$E2E_CONF.off" "$E2E_CONF"
    if [ $# = 0 ]; then ct rm -f "$QUEUE_CONF"; else printf '%s\n' "$1" | ct_write "$QUEUE_CONF" 0644; fi
    restart_reader
}

# queue_pending: records pending in the queue, as the administrator sees them.
queue_pending() {
    ct pure-uploadscript queue list --json | jq -s '[.[] | select(.state == "pending")] | length'
}

# runs_of FILE: how many times the program ran to its end for FILE.
runs_of() { hook_calls "$1" | wc -l; }

# queue_files DIR PREFIX N [K]: N files in DIR, every Kth slow (default 4,
# 0 for none); prints their paths on the server.
queue_files() {
    local dir=$1 prefix=$2 n=$3 k=${4:-4} i name
    for i in $(seq -w 1 "$n"); do
        name=$prefix-$i.dat
        [ "$k" != 0 ] && [ $((10#$i % k)) = 0 ] && name=$prefix-$i-slow.dat
        make_file "$dir" "$name" $((RANDOM % 3000 + 1))
        echo "$FTP_HOME/$name"
    done
}
queue_upload_all() { # dir log: uploads every file of DIR, as fast as it can
    cts 'for f in "$1"/*.dat; do curl -sS --max-time 20 -T "$f" "$2" || echo "UPLOAD FAILED: $f"; done
         echo STREAM DONE' "$1" "$(ftp_url)" >"$2" 2>&1
}
expect_stream_done() { # log
    grep -q 'STREAM DONE' "$1" || fail "the upload stream did not finish: $(tail -3 "$1")"
    if grep 'UPLOAD FAILED' "$1"; then fail "some uploads failed"; fi
}
# every file ran at least once; more than once only for FILES in flight
expect_runs() { # in-flight-list file...
    local inflight=$1 f n bad=0
    shift
    for f in "$@"; do
        n=$(runs_of "$f")
        if [ "$n" -lt 1 ]; then
            echo "  $f: never ran"
            bad=$((bad + 1))
        elif [ "$n" -gt 1 ] && ! grep -qxF "$f" <<<"$inflight"; then
            echo "  $f: ran $n times and was not in flight"
            bad=$((bad + 1))
        fi
    done
    [ "$bad" = 0 ] || fail "$bad of $# uploads lost or run twice"
}
wait_runs() { # secs file...: until every file ran at least once
    local secs=$1 f
    shift
    local deadline=$((SECONDS + secs))
    for f in "$@"; do
        until [ "$(runs_of "$f")" -ge 1 ]; do
            [ "$SECONDS" -lt "$deadline" ] || fail "${f##*/} did not run within ${secs}s"
            sleep 0.3
        done
    done
}
# rerun_since TIME: files whose run started again (a second attempt or
# later) since TIME: with no retries configured, the runs that were in
# flight when a reader died.
rerun_since() {
    ct journalctl --no-pager -q -o json -u "$READER_UNIT" --since "$1" \
        MESSAGE_ID=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a81 |
        jq -r 'select((.QUEUE_ATTEMPT | tonumber) > 1) | .UPLOAD_FILE' | sort -u
}

case_queue_kill_backlog() {
    require_package
    ensure_ftpd
    queue_config 'jobs = 2'
    local -a files
    mapfile -t files < <(queue_files "$SRC/qkill" qkill 24 2)
    local log=$E2E_WORK/qkill.log inflight pid
    queue_upload_all "$SRC/qkill" "$log" &
    local spid=$!
    wait_until 30 "a backlog of 4 records in the queue" cts '[ "$(pure-uploadscript queue list --json | grep -c "\"pending\"")" -ge 4 ]'
    wait_until 20 "runs in flight" cts 'pgrep -f "e2e-upload-hook /" >/dev/null'
    pid=$(main_pid "$READER_UNIT")
    local since
    since=$(ct date '+%Y-%m-%d %H:%M:%S')
    ct kill -KILL "$pid"
    note "kill -9 $pid with $(queue_pending) records pending"
    wait_until 15 "systemd to restart the reader" main_pid_changed "$READER_UNIT" "$pid"
    # The pipe's capacity, raised to pipe-max-size.
    local size
    size=$(ct journalctl --no-pager -q -o json -u "$READER_UNIT" _PID="$(main_pid "$READER_UNIT")" |
        jq -r 'select(.PIPE_SIZE != null) | .PIPE_SIZE' | tail -n 1)
    [ "$size" = 1048576 ] || fail "the pipe holds ${size:-?} bytes, not 1048576"
    wait "$spid" || true
    expect_stream_done "$log"
    wait_runs 90 "${files[@]}"
    sleep 1
    inflight=$(rerun_since "$since")
    note "in flight at the kill, run again: $(tr '\n' ' ' <<<"$inflight")"
    expect_runs "$inflight" "${files[@]}"
    local left
    left=$(ct pure-uploadscript queue list --json | jq -r 'select(.file | test("/qkill-")) | .file')
    [ -z "$left" ] || fail "records still in the queue: $left"
    queue_config
}

case_queue_unit_killed() {
    require_package
    ensure_ftpd
    queue_config 'jobs = 1'
    local -a files
    mapfile -t files < <(queue_files "$SRC/qunit" qunit 16 2)
    local log=$E2E_WORK/qunit.log inflight pid
    queue_upload_all "$SRC/qunit" "$log" &
    local spid=$!
    wait_until 30 "a backlog of 3 records in the queue" cts '[ "$(pure-uploadscript queue list --json | grep -c "\"pending\"")" -ge 3 ]'
    pid=$(main_pid "$READER_UNIT")
    local since
    since=$(ct date '+%Y-%m-%d %H:%M:%S')
    # systemctl may report processes it could not signal (a cgroup.kill
    # refused in the container): the main process's restart is the check.
    ct systemctl kill --signal=KILL "$READER_UNIT" || true
    note "systemctl kill --signal=KILL $READER_UNIT with $(queue_pending) records pending"
    wait_until 15 "systemd to restart the reader" main_pid_changed "$READER_UNIT" "$pid"
    wait "$spid" || true
    expect_stream_done "$log"
    wait_runs 90 "${files[@]}"
    sleep 1
    inflight=$(rerun_since "$since")
    note "in flight at the kill, run again: $(tr '\n' ' ' <<<"$inflight")"
    expect_runs "$inflight" "${files[@]}"
    queue_config
}

case_queue_disk_full() {
    require_package
    ensure_ftpd
    local -a files
    # More records than fit in the page the queue file has already.
    mapfile -t files < <(queue_files "$SRC/qfull" qfull 60 0)
    ct systemctl stop "$READER_UNIT"
    cts 'mkdir -p "$1" && mount -t tmpfs -o size=64k,mode=0700 e2e-queue-full "$1"' "$QUEUE_DIR"
    ct systemctl start "$READER_UNIT"
    wait_until 15 "$READER_UNIT to be active" unit_is "$READER_UNIT" active
    cts 'head -c 1M /dev/zero > "$1/filler" 2>/dev/null || true' "$QUEUE_DIR"
    local log=$E2E_WORK/qfull.log
    queue_upload_all "$SRC/qfull" "$log"
    expect_stream_done "$log"
    wait_until 15 "the reader to say why it stopped reading the pipe" \
        cts 'systemctl show -P StatusText "$1" | grep "not reading the pipe: No space left on device" >/dev/null' "$READER_UNIT"
    ct journalctl -q --no-pager -u "$READER_UNIT" MESSAGE_ID=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a85 | grep . >/dev/null ||
        fail "no INTAKE_STOPPED event"
    local last=${files[-1]}
    [ "$(runs_of "$last")" = 0 ] || fail "${last##*/} ran although the queue could not take it"
    note "disk full: $(ct systemctl show -P StatusText "$READER_UNIT")"
    ct rm -f "$QUEUE_DIR/filler"
    wait_runs 60 "${files[@]}"
    sleep 1
    expect_runs "" "${files[@]}"
    ct journalctl -q --no-pager -u "$READER_UNIT" MESSAGE_ID=5e1a2f8c3b7d4e0f9a6c1d2b3e4f5a86 | grep . >/dev/null ||
        fail "no INTAKE_RESUMED event"
    ct systemctl stop "$READER_UNIT"
    ct umount "$QUEUE_DIR"
    ct systemctl start "$READER_UNIT"
}

# The container reboots between queue-reboot and queue-after-reboot (the
# harness does it when a case leaves $E2E_WORK/reboot).
case_queue_reboot() {
    require_package
    ensure_ftpd
    queue_config 'jobs = 1'
    local log=$E2E_WORK/qboot.log
    mapfile -t files < <(queue_files "$SRC/qboot" qboot 8 1)
    queue_upload_all "$SRC/qboot" "$log"
    expect_stream_done "$log"
    local pending
    pending=$(queue_pending)
    [ "$pending" -ge 4 ] || fail "only $pending records pending before the reboot"
    note "rebooting with $pending records pending"
    printf '%s\n' "${files[@]}" >"$E2E_WORK/qboot.files"
    touch "$E2E_WORK/reboot"
}

case_queue_after_reboot() {
    require_package
    [ -s "$E2E_WORK/qboot.files" ] || fail "queue-reboot did not run"
    local -a files
    mapfile -t files <"$E2E_WORK/qboot.files"
    ensure_ftpd
    wait_runs 90 "${files[@]}"
    sleep 1
    expect_runs "" "${files[@]}"
    queue_config
}

# ---------------------------------------------------------------------------
# Benchmark (bench/uploadscript-journald.sh; runs only when named in
# E2E_CASES): N records written into the upload pipe at once, as pure-ftpd
# writes them, against Debian's C reader and ours (pure-uploadscript.service:
# journald logging, the queue synced in its state directory), alternated;
# the program is a compiled one that sleeps BENCH_SLEEP_MS (0: none) and
# marks the last record; ours runs it with jobs = BENCH_JOBS in process
# isolation. Prints "BENCH ..." lines.
# Process isolation in the reader's unit: the reader switches identity (the
# C tool's setgroups/setgid/setuid, to root by default), which its sandbox
# does not allow. A drop-in as an administrator would write it.
BENCH_PROCESS_DROPIN=/etc/systemd/system/pure-uploadscript.service.d/60-bench-process.conf
allow_process_mode() {
    if [ "${1:-}" = off ]; then
        ct rm -f "$BENCH_PROCESS_DROPIN"
    else
        ct_write "$BENCH_PROCESS_DROPIN" 0644 <<'EOF2'
[Service]
CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID CAP_KILL
SystemCallFilter=
SystemCallFilter=@system-service
EOF2
    fi
    ct systemctl daemon-reload
}

case_bench_queue() {
    require_package
    ensure_ftpd
    local n=${BENCH_N:-2000} rounds=${BENCH_ROUNDS:-3} ms=${BENCH_SLEEP_MS:-0} jobs=${BENCH_JOBS:-1} r
    cts 'mkdir -p /srv/bench-q && echo data > /srv/bench-q/file && echo data > /srv/bench-q/last
         for i in $(seq 0 $(($1 - 1))); do echo data > /srv/bench-q/f-$i; done
         cat > /tmp/bench-hook.c <<C
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strlen(argv[1]) : 0;
    struct timespec t = { $2 / 1000, ($2 % 1000) * 1000000L };
    if ($2 > 0) nanosleep(&t, 0);
    if (n >= 5 && strcmp(argv[1] + n - 5, "/last") == 0)
        close(open("/run/bench-q.done", O_CREAT | O_WRONLY, 0644));
    return 0;
}
C
         cat > /tmp/bench-writer.c <<"C"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int fd = open(argv[1], O_WRONLY);
    long n = atol(argv[2]);
    char buf[512];
    if (fd < 0) { perror("open"); return 1; }
    for (long i = 0; i <= n; i++) {
        int len = i < n ? snprintf(buf, sizeof buf, "\002bench\001/srv/bench-q/f-%ld", i)
                        : snprintf(buf, sizeof buf, "\002bench\001/srv/bench-q/last");
        if (write(fd, buf, (size_t) len + 1) != len + 1) { perror("write"); return 1; }
    }
    return 0;
}
C
         cat > /tmp/bench-floor.c <<"C"
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
/* The floor: the program run on each file, one at a time, by posix_spawn
   and waitpid alone (no pipe, no record, no log). */
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    char file[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i <= n; i++) {
        if (i < n) snprintf(file, sizeof file, "/srv/bench-q/f-%ld", i);
        else snprintf(file, sizeof file, "/srv/bench-q/last");
        char *args[] = { "/usr/local/bin/bench-q-hook", file, 0 };
        pid_t pid;
        int status;
        if (posix_spawn(&pid, args[0], 0, 0, args, environ) != 0) { perror("posix_spawn"); return 1; }
        waitpid(pid, &status, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%ld\n", (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    return 0;
}
C
         cc -O2 -o /usr/local/bin/bench-q-hook /tmp/bench-hook.c
         cc -O2 -o /usr/local/bin/bench-q-writer /tmp/bench-writer.c
         cc -O2 -o /usr/local/bin/bench-q-floor /tmp/bench-floor.c' "$n" "$ms"
    allow_process_mode
    use_config "run = \"/usr/local/bin/bench-q-hook\"
isolation = \"process\"
jobs = $jobs"
    # Prints ms from the first write to the last record's run. The end is
    # waited for on a FIFO that the last run opens: a poll would take CPU
    # from the reader measured (more from ours, which uses both cores, than
    # from the C reader, which uses one). Removed after, as the floor's
    # last run creates a plain file there.
    timed() {
        cts 'rm -f /run/bench-q.done && mkfifo /run/bench-q.done
             t0=$(date +%s%N)
             bench-q-writer "$1" "$2"
             cat /run/bench-q.done >/dev/null
             t1=$(date +%s%N)
             rm -f /run/bench-q.done
             echo $(((t1 - t0) / 1000000))' "$FIFO" "$n"
    }
    local -a cs=() ours=() floors=()
    for ((r = 1; r <= rounds; r++)); do
        ct systemctl stop "$READER_PATH_UNIT" "$READER_UNIT"
        # The floor, in a unit as the C reader: the program run on every
        # file one at a time, with nothing else.
        floors+=("$(ct systemd-run --quiet --wait --pipe bench-q-floor "$n")")
        ct systemd-run --quiet --unit=bench-q-c /usr/sbin/pure-uploadscript.distrib -r /usr/local/bin/bench-q-hook
        sleep 0.5
        cs+=("$(timed)")
        ct systemctl stop bench-q-c
        ct systemctl start "$READER_PATH_UNIT" "$READER_UNIT"
        wait_until 15 "$READER_UNIT to be active" unit_is "$READER_UNIT" active
        sleep 0.5
        ours+=("$(timed)")
        note "round $r: floor ${floors[-1]} ms, C ${cs[-1]} ms, ours ${ours[-1]} ms for $n records"
        echo "BENCH round $r floor_ms ${floors[-1]} c_ms ${cs[-1]} ours_ms ${ours[-1]}"
    done
    local cm om fm
    cm=$(printf '%s\n' "${cs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    om=$(printf '%s\n' "${ours[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    fm=$(printf '%s\n' "${floors[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "BENCH median floor_ms $fm c_ms $cm ours_ms $om ratio $(awk -v a="$om" -v b="$cm" 'BEGIN { printf "%.2f", a / b }') c_to_floor $(awk -v a="$cm" -v b="$fm" 'BEGIN { printf "%.2f", a / b }') ours_to_floor $(awk -v a="$om" -v b="$fm" 'BEGIN { printf "%.2f", a / b }') uploads_per_s_c $(awk -v t="$cm" -v n="$n" 'BEGIN { printf "%.1f", (n + 1) * 1000 / t }') uploads_per_s_ours $(awk -v t="$om" -v n="$n" 'BEGIN { printf "%.1f", (n + 1) * 1000 / t }') n $n program_ms $ms jobs $jobs rounds $rounds load $(cut -d' ' -f1-3 /proc/loadavg)"
    use_config
    allow_process_mode off
}

# ---------------------------------------------------------------------------
# Benchmark (bench/uploadscript-burst.sh; runs only when named in E2E_CASES):
# BENCH_N uploads in a burst (BENCH_CLIENTS FTP clients at once, through
# pure-ftpd) against a program that sleeps BENCH_SLEEP_MS, with Debian's C
# reader and with ours (jobs = 1, process isolation); for each upload, the
# time from the end of its data transfer to the server's 226 reply (which
# pure-ftpd sends once it has written the record into the upload pipe).
# Prints "BENCH ..." lines: the distribution for each reader, and for ours
# with a program that does nothing (the no-program value).
case_bench_burst() {
    require_package
    ensure_ftpd
    local n=${BENCH_N:-2000} clients=${BENCH_CLIENTS:-8} ms=${BENCH_SLEEP_MS:-50}
    ct_write /usr/local/bin/bench-burst-client 0755 <<'EOF2'
#!/usr/bin/python3
# bench-burst-client HOST PORT USER PASSWORD N CLIENTS TAG: N uploads from
# CLIENTS connections at once; prints the 226 waits' distribution in ms.
import ftplib, sys, threading, time
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
n, clients, tag = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
waits, lock = [], threading.Lock()
def client(k):
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=600)
    ftp.login(user, password)
    for i in range(k, n, clients):
        conn = ftp.transfercmd("STOR burst-%s-%05d.dat" % (tag, i))
        conn.sendall(b"x" * 64)
        conn.close()
        t = time.monotonic()
        ftp.voidresp()
        with lock:
            waits.append((time.monotonic() - t) * 1000)
    ftp.quit()
t0 = time.monotonic()
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
total = time.monotonic() - t0
waits.sort()
q = lambda p: waits[min(len(waits) - 1, int(p * len(waits)))]
print("%s n %d clients %d burst_s %.2f wait_ms p50 %.2f p90 %.2f p99 %.2f max %.2f"
      % (tag, len(waits), clients, total, q(0.5), q(0.9), q(0.99), waits[-1]))
EOF2
    cts 'cat > /tmp/bench-burst-hook.c <<C
#include <time.h>
int main(void)
{
    struct timespec t = { 0, $1 * 1000000L };
    nanosleep(&t, 0);
    return 0;
}
C
         cc -O2 -o /usr/local/bin/bench-burst-hook /tmp/bench-burst-hook.c' "$ms"
    allow_process_mode
    burst() { ct -t 900 bench-burst-client 127.0.0.1 "$FTP_PORT" "$FTP_USER" "$FTP_PASS" "$n" "$clients" "$1"; }
    # Ours with a program that does nothing: the no-program value.
    use_config 'run = "/bin/true"
isolation = "process"'
    echo "BENCH $(burst ours-noop)"
    # C: one run of the program at a time, the pipe its only queue, at its
    # default size (a new pipe: pure-ftpd holds the old one, which ours
    # enlarged).
    ct systemctl stop "$READER_PATH_UNIT" "$READER_UNIT"
    stop_ftpd
    ct rm -f "$FIFO"
    start_ftpd
    wait_until 10 "pure-ftpd to create $FIFO" ct test -p "$FIFO"
    ct systemd-run --quiet --unit=bench-burst-c /usr/sbin/pure-uploadscript.distrib -r /usr/local/bin/bench-burst-hook
    wait_until 15 "an FTP login once the C reader has the pipe" ftp_login
    echo "BENCH pipe_size_c $(cts 'python3 -c "import fcntl,os; fd=os.open(\"$1\", os.O_RDWR|os.O_NONBLOCK); print(fcntl.fcntl(fd, 1032))"' "$FIFO")"
    echo "BENCH $(burst c-${ms}ms)"
    ct systemctl stop bench-burst-c
    ct systemctl start "$READER_PATH_UNIT" "$READER_UNIT"
    wait_until 15 "$READER_UNIT to be active" unit_is "$READER_UNIT" active
    # What the C reader left in the pipe goes into our queue: not measured.
    ct systemctl stop "$READER_UNIT"
    ct rm -f /var/lib/pure-uploadscript/queue
    use_config "run = \"/usr/local/bin/bench-burst-hook\"
isolation = \"process\""
    echo "BENCH $(burst ours-${ms}ms) queue_after_burst $(queue_pending)"
    ct systemctl stop "$READER_UNIT"
    ct rm -f /var/lib/pure-uploadscript/queue
    use_config
    allow_process_mode off
}
