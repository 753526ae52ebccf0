#!/usr/bin/env bash
# Label Studio (Community edition) for the integration tests: its own venv, SQLite, loopback only.
#   bash scripts/servers/labelstudio.sh install   # .venv-ls with label-studio==1.23.2 (idempotent)
#   bash scripts/servers/labelstudio.sh start     # background server; writes $RUN_SERVERS_DIR/labelstudio.env
#   bash scripts/servers/labelstudio.sh stop      # kill by PID (idempotent)
# Settings (environment, with defaults):
#   RUN_SERVERS_DIR          state dir: SQLite data in ls/, log, pid and env files (required for start/stop)
#   LABEL_STUDIO_PORT        first port tried (8080); the next free one is used if it is taken
#   LABEL_STUDIO_USERNAME    preset admin e-mail (admin@example.com)
#   LABEL_STUDIO_PASSWORD    preset admin password (admin-pass-123)
#   LABEL_STUDIO_USER_TOKEN  preset admin legacy API token (CI-only default below)
#   LABEL_STUDIO_START_TIMEOUT  seconds to wait for /health (180)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/servers/lib/serverlib.bash
VERSION=1.23.2
VENV=.venv-ls

cmd=${1:-}
case "$cmd" in
install)
    if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("label-studio"))' 2>/dev/null || true)" = "$VERSION" ]; then
        echo "labelstudio: label-studio $VERSION already installed in $VENV"
        exit 0
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "label-studio==$VERSION"
    echo "labelstudio: installed label-studio $VERSION in $VENV"
    ;;
start)
    : "${RUN_SERVERS_DIR:?set RUN_SERVERS_DIR to a state directory}"
    mkdir -p "$RUN_SERVERS_DIR/ls"
    pidfile="$RUN_SERVERS_DIR/labelstudio.pid"
    log="$RUN_SERVERS_DIR/labelstudio.log"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "labelstudio: already running (pid $(cat "$pidfile"))"
        exit 0
    fi
    [ -x "$VENV/bin/label-studio" ] || { echo "labelstudio: $VENV missing; run '$0 install' first" >&2; exit 1; }
    port=$(free_port "$VENV/bin/python" "${LABEL_STUDIO_PORT:-8080}")
    url="http://127.0.0.1:$port"
    user=${LABEL_STUDIO_USERNAME:-admin@example.com}
    password=${LABEL_STUDIO_PASSWORD:-admin-pass-123}
    token=${LABEL_STUDIO_USER_TOKEN:-0123456789abcdef0123456789abcdef01234567}   # CI only, not a secret
    t0=$(date +%s)
    (
        export LABEL_STUDIO_BASE_DATA_DIR="$RUN_SERVERS_DIR/ls"
        export LABEL_STUDIO_USERNAME="$user" LABEL_STUDIO_PASSWORD="$password" LABEL_STUDIO_USER_TOKEN="$token"
        export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true      # without it the preset token gets 401
        export LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true
        export SECRET_KEY=${LABEL_STUDIO_SECRET_KEY:-ci-only-not-secret}
        export SENTRY_DSN= FRONTEND_SENTRY_DSN=               # no hosted Sentry
        export COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false
        exec "$VENV/bin/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$port" \
            --host "$url" --data-dir "$RUN_SERVERS_DIR/ls" > "$log" 2>&1 < /dev/null
    ) &
    echo $! > "$pidfile"
    timeout=${LABEL_STUDIO_START_TIMEOUT:-180}
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || true)
        [ "$code" = "200" ] && break
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null || [ $(( $(date +%s) - t0 )) -ge "$timeout" ]; then
            echo "labelstudio: not healthy at $url/health after $(( $(date +%s) - t0 )) s; log tail:" >&2
            tail -n 40 "$log" >&2 || true
            bash "$0" stop || true
            exit 1
        fi
        sleep 1
    done
    # For the tests: the URL and key the connector reads, and the admin login (to mint a personal access token).
    printf 'LABEL_STUDIO_URL=%s\nLABEL_STUDIO_API_KEY=%s\nLABEL_STUDIO_USERNAME=%s\nLABEL_STUDIO_PASSWORD=%s\n' \
        "$url" "$token" "$user" "$password" > "$RUN_SERVERS_DIR/labelstudio.env"
    echo "labelstudio: up at $url in $(( $(date +%s) - t0 )) s (pid $(cat "$pidfile"))"
    ;;
stop)
    : "${RUN_SERVERS_DIR:?set RUN_SERVERS_DIR to a state directory}"
    stop_pidfile labelstudio "$RUN_SERVERS_DIR/labelstudio.pid"
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
