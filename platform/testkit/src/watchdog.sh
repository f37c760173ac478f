#!/bin/sh
# Stops the testkit's shared PostgreSQL once no test process has used it for a while.
#
# Every test process holds a shared flock on users.lock for as long as it lives; this
# watchdog checks once a second, under the exclusive server.lock, whether it could take
# users.lock exclusively (nobody uses the server). After IDLE_SECONDS such checks in a row
# it stops the server and removes its files. A process that starts meanwhile waits on
# server.lock and then starts a fresh server.
#
# Arguments: BASE_DIR IDLE_SECONDS COMMAND... (the command that stops the server)
set -u
base=$1
idle_seconds=$2
shift 2
idle=0
while sleep 1; do
    exec 9>"$base/server.lock"
    flock -x 9
    if [ ! -f "$base/port" ]; then
        exit 0 # another watchdog, or a crash, already took the server down
    fi
    if flock -n -x "$base/users.lock" true; then
        idle=$((idle + 1))
    else
        idle=0
    fi
    if [ "$idle" -ge "$idle_seconds" ]; then
        "$@" >/dev/null 2>&1
        rm -f "$base/port"
        rm -rf "$base/data"
        exit 0
    fi
    exec 9>&-
done
