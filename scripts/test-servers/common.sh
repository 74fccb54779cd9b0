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

descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        echo "$child"
        descendants "$child"
    done
}

# Whether the process runs: a killed server whose parent has not reaped it yet (a zombie) does not.
running() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Stops the server whose pid is in $1, and its connections, as a crash of the server would (each
# connection's processes may start sessions of their own, so they are found through their parents).
stop_server() {
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill -KILL $(descendants "$pid") "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.05; done
    rm -f "$pidfile"
}
