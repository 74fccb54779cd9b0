# Shared by the test server scripts (sourced, not run).

# The test login, for every server: the system user 'cxdrop', home /var/lib/cxdrop.
test_user=cxdrop

# Creates the test login if missing and sets its password; under a lock, as tests start servers in
# parallel.
ensure_test_user() {
    (
        flock 9
        id "$test_user" >/dev/null 2>&1 || useradd --create-home --home-dir "/var/lib/$test_user" --shell /bin/sh "$test_user"
        echo "$test_user:cx-test-password" | chpasswd
        # The tests' folders in the login's home, left by earlier runs (some hold 100-200 MiB files).
        find "/var/lib/$test_user" -mindepth 1 -maxdepth 1 -mmin +180 ! -name '.*' -exec rm -rf {} + 2>/dev/null || true
    ) 9>/tmp/connectxpert-test-user.lock
}

# The state letter of process $1 (R, S, T, Z…), empty when it is gone.
state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1; }

# Whether the process runs: a killed server whose parent has not reaped it yet (a zombie) does not.
running() {
    local now
    now=$(state "$1")
    [ -n "$now" ] && [ "$now" != Z ]
}

# Stops process $1 and waits until it is stopped, within 1 s: from then on it forks no more, so
# its children can be listed for good.
freeze() {
    kill -STOP "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        case $(state "$1") in T | t | Z | "") return 0 ;; esac
        sleep 0.01
    done
}

# Process $1 and all its descendants, each frozen before its children are listed: listed while
# running, a server could accept a connection in between, and that session would survive the kill.
frozen_tree() {
    local child
    freeze "$1"
    echo "$1"
    for child in $(pgrep -P "$1"); do frozen_tree "$child"; done
}

# Stops the server whose pid is in $1, and its connections, as a crash of the server would (each
# connection's processes may start sessions of their own, so they are found through their parents).
stop_server() {
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -KILL $(frozen_tree "$pid") 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.05; done
    rm -f "$pidfile"
}

# Closes every descriptor but stdin, stdout and stderr, before a server is started: a server that
# kept one (dropbear going to the background keeps what it inherits) would hold a caller's pipe
# open, and whoever reads the script's output would wait for ever.
close_inherited_descriptors() {
    local fd
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
}

# Returns once something listens on 127.0.0.1:$1, within 5 s; else says that $2 did not start,
# pointing at $3, and fails.
wait_for_port() {
    local port=$1 name=$2 log=$3
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$name did not start on port $port; see $log" >&2
    return 1
}
