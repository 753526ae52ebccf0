#!/usr/bin/env bash
# Headless Chromium for the browser test of the leads' web page (tests/integration/test_web_browser.py).
#   bash scripts/servers/chromium.sh install   # Debian's chromium + chromium-driver (apt), if missing
#   bash scripts/servers/chromium.sh start     # nothing to start: the test launches the browser itself
#   bash scripts/servers/chromium.sh stop      # nothing to stop
#
# The test drives /usr/bin/chromium through /usr/bin/chromedriver (Selenium with explicit paths, so
# Selenium Manager never downloads a browser or a driver).
set -euo pipefail

log() { echo "[chromium] $*" >&2; }

install() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        log "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2> /dev/null || true)"
        return
    fi
    log "installing chromium and chromium-driver (apt)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q chromium chromium-driver > /dev/null \
        || { $sudo apt-get update -q > /dev/null && $sudo apt-get install -y -q chromium chromium-driver > /dev/null; }
}

case "${1:-}" in
    install) install ;;
    start | stop) ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
