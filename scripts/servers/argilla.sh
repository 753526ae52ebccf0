#!/usr/bin/env bash
# argilla-server 2.8.0 for the integration tests, on 127.0.0.1 only.
#   RUN_SERVERS_DIR=/tmp/aod-ag bash scripts/servers/argilla.sh install   # redis-server (apt) + .venv-argilla (pip)
#   RUN_SERVERS_DIR=/tmp/aod-ag bash scripts/servers/argilla.sh start     # redis, noida-db, argilla-server, rq worker
#   RUN_SERVERS_DIR=/tmp/aod-ag bash scripts/servers/argilla.sh stop      # kill every recorded PID (idempotent)
#
# Argilla needs Redis and an Elasticsearch; no real Elasticsearch can be installed here, so the search engine
# is noida-db (PyPI), an Elasticsearch 8 REST emulator (see shared/notes/annotation-servers.md section 2).
# The database is SQLite under $RUN_SERVERS_DIR/argilla. `start` creates an owner and two annotators with
# fixed CI-only keys and writes $RUN_SERVERS_DIR/argilla.env (ARGILLA_API_URL, ARGILLA_API_KEY,
# ARGILLA_ANNOTATOR1_API_KEY, ARGILLA_ANNOTATOR2_API_KEY, ARGILLA_WORKSPACE) for scripts/test.sh.
#
# Settings (environment; defaults in brackets). A busy port is replaced by a free one, and the URL in
# argilla.env says which was used.
#   ARGILLA_PORT [6900]  ARGILLA_ES_PORT [9200]  ARGILLA_REDIS_PORT [6379]  ARGILLA_START_TIMEOUT [120] s
#   ARGILLA_CI_WORKSPACE [argilla]
#   ARGILLA_CI_OWNER_KEY / ARGILLA_CI_ANNOTATOR1_KEY / ARGILLA_CI_ANNOTATOR2_KEY   CI-only keys, not secrets
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv-argilla
AG=$VENV/bin/python
: "${RUN_SERVERS_DIR:?set RUN_SERVERS_DIR to a folder for the servers state, e.g. RUN_SERVERS_DIR=/tmp/aod-ag}"
RUN=$RUN_SERVERS_DIR
PIDS=$RUN/argilla.pids
ENV_FILE=$RUN/argilla.env

log() { echo "[argilla] $*" >&2; }

install() {
    if ! command -v redis-server > /dev/null; then
        log "installing redis-server (apt)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get install -y -q redis-server > /dev/null \
            || { $sudo apt-get update -q > /dev/null && $sudo apt-get install -y -q redis-server > /dev/null; }
    fi
    [ -x "$AG" ] || python3 -m venv "$VENV"
    if "$AG" - <<'EOF' 2> /dev/null; then
from importlib.metadata import version
assert version("argilla-server") == "2.8.0" and version("noida-db") == "0.2.3"
EOF
        log "argilla-server 2.8.0 and noida-db 0.2.3 already in $VENV"
    else
        log "installing argilla-server 2.8.0 + noida-db 0.2.3 into $VENV"
        # click<8.2: argilla-server's typer<0.10 breaks on newer click; huggingface-hub<1 keeps pip check clean.
        "$VENV/bin/pip" install -q --disable-pip-version-check \
            "argilla-server==2.8.0" "click<8.2" "huggingface-hub<1" "noida-db==0.2.3"
    fi
}

# Print $1 if nothing listens on 127.0.0.1:$1, else a free port chosen by the kernel.
free_port() {
    python3 - "$1" <<'EOF'
import socket, sys
want = int(sys.argv[1])
for port in (want, 0):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is not "busy"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
EOF
}

# Start a command in its own process group (so stop can end its children too) and record its PID.
spawn() {
    local logfile=$1; shift
    setsid "$@" > "$logfile" 2>&1 < /dev/null &
    echo $! >> "$PIDS"
}

tails() {
    for f in "$RUN"/redis.log "$RUN"/noida.log "$RUN"/argilla-server.log "$RUN"/argilla-worker.log "$RUN"/argilla-setup.log; do
        [ -f "$f" ] && { echo "----- tail $f" >&2; tail -n 25 "$f" >&2; }
    done
    return 0
}

fail() {
    log "FAILED: $*"
    tails
    stop
    exit 1
}

start() {
    [ -x "$AG" ] || { log "$VENV is missing; run: bash scripts/servers/argilla.sh install"; exit 1; }
    command -v redis-server > /dev/null || { log "redis-server is missing; run: bash scripts/servers/argilla.sh install"; exit 1; }
    [ -s "$PIDS" ] && stop
    mkdir -p "$RUN/argilla" "$RUN/noida"
    : > "$PIDS"
    local t0=$SECONDS
    local redis_port es_port ag_port
    redis_port=$(free_port "${ARGILLA_REDIS_PORT:-6379}")
    es_port=$(free_port "${ARGILLA_ES_PORT:-9200}")
    ag_port=$(free_port "${ARGILLA_PORT:-6900}")
    local url=http://127.0.0.1:$ag_port
    local workspace=${ARGILLA_CI_WORKSPACE:-argilla}
    local owner_key=${ARGILLA_CI_OWNER_KEY:-argilla.apikey.owner.ci-only-0123456789}
    local annot1_key=${ARGILLA_CI_ANNOTATOR1_KEY:-argilla.apikey.annotator1.ci-only-0123456789}
    local annot2_key=${ARGILLA_CI_ANNOTATOR2_KEY:-argilla.apikey.annotator2.ci-only-0123456789}

    spawn "$RUN/redis.log" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$RUN"
    # The noida-db console script is a Python wrapper that leaves the binary running when killed: run the binary.
    local noida
    noida=$("$AG" -c "from importlib.resources import files; print(files('noida_db') / 'noida-db')")
    spawn "$RUN/noida.log" "$noida" start --data-dir "$RUN/noida" --host 127.0.0.1 \
        --only elasticsearch --elasticsearch-port "$es_port"

    export ARGILLA_HOME_PATH=$RUN/argilla
    export ARGILLA_DATABASE_URL="sqlite+aiosqlite:///$RUN/argilla/argilla.db?check_same_thread=False"
    export ARGILLA_SEARCH_ENGINE=elasticsearch ARGILLA_ELASTICSEARCH=http://127.0.0.1:$es_port
    export ARGILLA_REDIS_URL=redis://127.0.0.1:$redis_port/0
    export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1   # also turns off argilla-server's telemetry
    # The rq worker needs only Redis: start it now, so its imports overlap the database setup.
    spawn "$RUN/argilla-worker.log" "$AG" -m argilla_server worker --num-workers 1
    # `database migrate` and three `database users create`, in one process: each CLI call spends seconds on
    # imports. Users that already exist are skipped, so a restart on the same folder works.
    AOD_OWNER_KEY=$owner_key AOD_ANNOT1_KEY=$annot1_key AOD_ANNOT2_KEY=$annot2_key AOD_WORKSPACE=$workspace \
        "$AG" - > "$RUN/argilla-setup.log" 2>&1 <<'EOF' || fail "database migrate / users create (see argilla-setup.log)"
import os
from argilla_server.cli.database.migrate import migrate_db
from argilla_server.cli.database.users.create import create
from argilla_server.models import UserRole
migrate_db(revision="head")
ws = [os.environ["AOD_WORKSPACE"]]
create(first_name="Owner", last_name=None, username="owner", role=UserRole.owner,
       password="owner-pass-ci-only", api_key=os.environ["AOD_OWNER_KEY"], workspace=[])
create(first_name="Annotator", last_name="One", username="annotator1", role=UserRole.annotator,
       password="annotator1-pass-ci-only", api_key=os.environ["AOD_ANNOT1_KEY"], workspace=ws)
create(first_name="Annotator", last_name="Two", username="annotator2", role=UserRole.annotator,
       password="annotator2-pass-ci-only", api_key=os.environ["AOD_ANNOT2_KEY"], workspace=ws)
EOF

    spawn "$RUN/argilla-server.log" "$AG" -m argilla_server start --host 127.0.0.1 --port "$ag_port"

    local deadline=$((SECONDS + ${ARGILLA_START_TIMEOUT:-120})) code=000
    while [ $SECONDS -lt $deadline ]; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url/api/v1/version" || true)
        [ "$code" = 200 ] && break
        while read -r pid; do
            kill -0 "$pid" 2> /dev/null || fail "process $pid exited during start-up"
        done < "$PIDS"
        sleep 0.5
    done
    [ "$code" = 200 ] || fail "$url/api/v1/version did not answer 200 within ${ARGILLA_START_TIMEOUT:-120} s (last: $code)"

    cat > "$ENV_FILE" <<EOF
ARGILLA_API_URL=$url
ARGILLA_API_KEY=$owner_key
ARGILLA_ANNOTATOR1_API_KEY=$annot1_key
ARGILLA_ANNOTATOR2_API_KEY=$annot2_key
ARGILLA_WORKSPACE=$workspace
EOF
    log "argilla-server 2.8.0 up at $url in $((SECONDS - t0)) s (redis :$redis_port, noida-db :$es_port); env in $ENV_FILE"
}

stop() {
    [ -f "$PIDS" ] || return 0
    local pids
    pids=$(cat "$PIDS")
    for pid in $pids; do
        # Each PID leads its own process group (setsid): end the group, so rq's work-horses go too.
        kill -TERM -- "-$pid" 2> /dev/null || true
    done
    for pid in $pids; do
        for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2> /dev/null || true
    done
    rm -f "$PIDS" "$ENV_FILE"
    log "stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: RUN_SERVERS_DIR=DIR bash $0 install|start|stop" >&2; exit 2 ;;
esac
