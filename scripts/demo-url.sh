#!/usr/bin/env bash
# Prints the demo pages' URLs for `make run`: the chat with tokens for alice and bob in the
# fragment (the page reads them; a fragment is never sent to a server), and the dashboard with
# the config's API key (stats.access "api_key", the default). DEV ONLY: the tokens are signed
# with conf/rtgate.json's secret.
#   scripts/demo-url.sh [CONFIG]        (RTGATE_BIN, DEMO_GW override the binary and the URL)
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-conf/rtgate.json}"
BIN="${RTGATE_BIN:-./build/rtgate}"
GW="${DEMO_GW:-http://127.0.0.1:8080}"
[ -x "$BIN" ] || { echo "demo-url: $BIN not built (make build)" >&2; exit 1; }
alice=$("$BIN" token --sub alice --ttl 86400 --config "$CONFIG")
bob=$("$BIN" token --sub bob --ttl 86400 --config "$CONFIG")
key=$(sed -n 's/.*"api_keys": *\[ *"\([^"]*\)".*/\1/p' "$CONFIG" | head -n 1)
echo "chat:      $GW/chat.html#alice=$alice&bob=$bob"
if [ -n "$key" ]; then
  echo "dashboard: $GW/dashboard.html#key=$key"
else
  echo "dashboard: $GW/dashboard.html#key=<an API key of $CONFIG>"
fi
