# What the server scripts beside this folder share (sourced, never run): a free loopback port, and stopping
# a server by its PID file.

# free_port PYTHON FIRST: print the first port from FIRST on (100 tried) that nothing on 127.0.0.1 holds.
free_port() {
    "$1" - "$2" <<'PY'
import socket, sys
port = int(sys.argv[1])
for p in range(port, port + 100):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(p)
        break
else:
    sys.exit(f"no free port in {port}..{port + 99}")
PY
}

# stop_pidfile NAME PIDFILE: stop the process in PIDFILE (TERM, then KILL after 15 s); idempotent.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [ -f "$pidfile" ] || { echo "$name: not running"; return 0; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "$name: stopped"
}
