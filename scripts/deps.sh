#!/usr/bin/env bash
# Installs the Debian 12 packages rtgate needs to build, run and test, if any are missing.
# Idempotent: when everything is present it does nothing (and needs no root).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libhiredis-dev libjansson-dev libssl-dev
  libcmocka-dev
  redis-server curl
)

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
