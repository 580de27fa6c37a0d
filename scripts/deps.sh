#!/usr/bin/env bash
# Installs the Debian 12 packages rtgate needs, if any are missing: to build and run it
# (no argument), or also to run the test suite ("test"). Idempotent: when everything is
# present it does nothing (and needs no root).
#
#   scripts/deps.sh          build + run   (make run)
#   scripts/deps.sh test     + test tools  (make test): Redis, HAProxy, promtool, ...
#   scripts/deps.sh bench    + benchmark peers and tools (make bench): nginx + Nchan, gnuplot
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libhiredis-dev libjansson-dev libssl-dev
  libcmocka-dev curl
)
if [ "${1:-}" = test ]; then
  PKGS+=(
    redis-server  # the backplane, started by the tests on private ports
    redis-sentinel # Sentinel failover test (backplane.sentinel)
    haproxy       # the L4 balancer of the cluster test
    prometheus    # promtool check metrics
    docker-compose # validates docker/docker-compose.yml (no engine runs here)
    systemd       # systemd-analyze verify on the unit
    clang libclang-rt-14-dev # libFuzzer harnesses (scripts/fuzz.sh)
    chromium      # browser tests, driven by playwright-core (never a downloaded browser)
    iproute2      # ss: connections per test
    coturn        # TURN server of the WebRTC call tests (started on 127.0.0.1 by the test)
  )
fi
if [ "${1:-}" = bench ]; then
  PKGS+=(
    redis-server       # the Redis scenarios
    nginx libnginx-mod-nchan # the peer the figures are compared with
    gnuplot-nox        # latency plots (PNG and SVG)
    iproute2           # nstat
  )
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
# Node.js runs the integration-test clients; any install providing node and npm will do.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
