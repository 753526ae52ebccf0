#!/usr/bin/env bash
# Set up everything and run the whole test suite, real annotation servers included.
#   bash scripts/test.sh [pytest args]
# Starts Label Studio and argilla-server (with Redis and the noida-db Elasticsearch emulator) on
# 127.0.0.1, exports their URLs and keys for the integration tests, and stops them by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

export RUN_SERVERS_DIR=${RUN_SERVERS_DIR:-$(mktemp -d /tmp/aod-servers.XXXXXX)}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
stop_servers() {
    for s in scripts/servers/*.sh; do bash "$s" stop || true; done
}
trap stop_servers EXIT

if [ "${AOD_SKIP_SERVERS:-0}" != "1" ]; then
    # Install every server first (they have their own venvs), then start them in parallel:
    # Label Studio's first start spends ~30 s on migrations.
    for s in scripts/servers/*.sh; do bash "$s" install; done
    pids=()
    for s in scripts/servers/*.sh; do bash "$s" start & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    # Each start script leaves KEY=VALUE lines for the tests here.
    for f in "$RUN_SERVERS_DIR"/*.env; do [ -f "$f" ] && set -a && . "$f" && set +a; done
fi

.venv/bin/ruff check .
# Two workers (pytest-xdist), one per core: each test file stays on one worker and the server tests run on one,
# in order (tests/conftest.py). PYTEST_WORKERS=0 runs everything in this process.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
