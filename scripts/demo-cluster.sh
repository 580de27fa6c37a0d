#!/usr/bin/env bash
# The topology of docker/docker-compose.yml on loopback, without containers: a private
# redis-server (no persistence), two rtgate nodes on the Redis backplane, and HAProxy in TCP
# mode (docker/haproxy.cfg, pointed at the nodes through its environment variables) in front.
# HAProxy also serves the demo page (docker/demo/index.html).
#
#   scripts/demo-cluster.sh start        start everything, print the URLs
#   scripts/demo-cluster.sh status       what runs, and HAProxy's view of the nodes
#   scripts/demo-cluster.sh token NAME   a JWT for user NAME (to paste into the demo page)
#   scripts/demo-cluster.sh stop         stop everything (by the pids in the run dir)
#
# Needs ./build/rtgate (make build), redis-server and haproxy (Debian: redis-server, haproxy).
# Overridable: RTGATE_BIN, DEMO_RUN_DIR, DEMO_LB_PORT (18080), DEMO_NODE1_PORT (18081),
# DEMO_NODE2_PORT (18082), DEMO_REDIS_PORT (18379), DEMO_PAGE_PORT (18090), DEMO_STATS_PORT (18404).
# Everything listens on 127.0.0.1 only. The secrets are DEV-ONLY.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${RTGATE_BIN:-$ROOT/build/rtgate}"
RUN="${DEMO_RUN_DIR:-/tmp/rtgate-demo-cluster}"
LB_PORT="${DEMO_LB_PORT:-18080}"
NODE1_PORT="${DEMO_NODE1_PORT:-18081}"
NODE2_PORT="${DEMO_NODE2_PORT:-18082}"
REDIS_PORT="${DEMO_REDIS_PORT:-18379}"
PAGE_PORT="${DEMO_PAGE_PORT:-18090}"
STATS_PORT="${DEMO_STATS_PORT:-18404}"
JWT_SECRET="DEV-ONLY-demo-cluster-jwt-secret-do-not-deploy"
API_KEY="DEV-ONLY-demo-cluster-api-key-do-not-deploy"
# Stopped in this order (the reverse of start).
SERVICES=(haproxy node2 node1 redis)

die() { echo "demo-cluster: $*" >&2; exit 1; }

# The pid of a service if it is running (and is still the program we started), else nothing.
pid_of() {
  local f="$RUN/$1.pid" pid prog
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  case "$1" in haproxy) prog=haproxy ;; redis) prog=redis-server ;; *) prog=rtgate ;; esac
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$prog"; then
    echo "$pid"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for CMD...: runs CMD every 0.1 s until it succeeds, at most 10 s.
wait_for() {
  local i
  for i in $(seq 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

node_config() { # PORT
  cat <<EOF
{
  "listen": { "address": "127.0.0.1", "port": $1 },
  "log_level": "info",
  "auth": { "jwt_secret": "$JWT_SECRET", "api_keys": ["$API_KEY"] },
  "shutdown_timeout_ms": 10000,
  "shutdown_grace_ms": 3000,
  "shutdown_spread_ms": 2000,
  "backplane": { "type": "redis", "url": "redis://127.0.0.1:$REDIS_PORT/0" },
  "cors": { "allowed_origins": ["http://127.0.0.1:$PAGE_PORT", "http://localhost:$PAGE_PORT"] }
}
EOF
}

# spawn NAME CMD...: starts CMD in the background, its output in RUN/NAME.log, its pid in RUN/NAME.pid.
spawn() {
  local name="$1"
  shift
  nohup "$@" >>"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

fail_start() { # NAME
  echo "demo-cluster: $1 did not start; the end of $RUN/$1.log:" >&2
  tail -n 20 "$RUN/$1.log" >&2 || true
  stop_all
  exit 1
}

start_all() {
  [ -x "$BIN" ] || die "$BIN not found: build it first (make build)"
  for p in redis-server haproxy curl; do
    command -v "$p" >/dev/null || die "$p is not installed (Debian: apt-get install redis-server haproxy curl)"
  done
  for s in "${SERVICES[@]}"; do
    [ -z "$(pid_of "$s")" ] || die "already running ($s, pid $(pid_of "$s")): scripts/demo-cluster.sh stop"
  done
  for p in "$LB_PORT" "$NODE1_PORT" "$NODE2_PORT" "$REDIS_PORT" "$PAGE_PORT" "$STATS_PORT"; do
    if port_busy "$p"; then die "port $p is in use (override it, see the top of $0)"; fi
  done
  mkdir -p "$RUN"
  rm -f "$RUN"/*.log

  spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$RUN" --protected-mode no
  wait_for redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || fail_start redis

  for i in 1 2; do
    port_var="NODE${i}_PORT"
    node_config "${!port_var}" >"$RUN/node$i.json"
    spawn "node$i" "$BIN" --config "$RUN/node$i.json"
  done
  for i in 1 2; do
    port_var="NODE${i}_PORT"
    wait_for curl -sf "http://127.0.0.1:${!port_var}/readyz" || fail_start "node$i"
  done

  RTGATE1_ADDR="127.0.0.1:$NODE1_PORT" RTGATE2_ADDR="127.0.0.1:$NODE2_PORT" \
    RTGATE_LB_BIND="127.0.0.1:$LB_PORT" HAPROXY_STATS_BIND="127.0.0.1:$STATS_PORT" \
    RTGATE_DEMO_BIND="127.0.0.1:$PAGE_PORT" RTGATE_DEMO_PAGE="$ROOT/docker/demo/index.html" \
    spawn haproxy haproxy -f "$ROOT/docker/haproxy.cfg" -db
  wait_for curl -sf "http://127.0.0.1:$LB_PORT/readyz" || fail_start haproxy

  cat <<EOF
demo-cluster: running (run dir $RUN)
  demo page   http://127.0.0.1:$PAGE_PORT/?gw=http://127.0.0.1:$LB_PORT
  gateway     http://127.0.0.1:$LB_PORT          (HAProxy, TCP, round robin over the two nodes)
  nodes       http://127.0.0.1:$NODE1_PORT  http://127.0.0.1:$NODE2_PORT
  HAProxy     http://127.0.0.1:$STATS_PORT/stats
  redis       127.0.0.1:$REDIS_PORT
  a token     $0 token alice
  publish     curl -s -H 'X-API-Key: $API_KEY' -H 'Content-Type: application/json' \\
                -d '{"topic":"room:lobby","data":{"text":"hi"}}' http://127.0.0.1:$LB_PORT/v1/publish
  failover    kill \$(cat $RUN/node1.pid)     (SIGTERM: node 1 drains, its clients move to node 2)
  stop        $0 stop
EOF
}

stop_one() { # NAME
  local pid i
  pid="$(pid_of "$1")"
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do # 15 s: longer than rtgate's shutdown_timeout_ms
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      echo "demo-cluster: $1 (pid $pid) still running after 15 s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "demo-cluster: stopped $1 (pid $pid)"
  fi
  rm -f "$RUN/$1.pid"
}

stop_all() {
  for s in "${SERVICES[@]}"; do stop_one "$s"; done
}

status_all() {
  local s pid any=1
  for s in redis node1 node2 haproxy; do
    pid="$(pid_of "$s")"
    if [ -n "$pid" ]; then
      echo "$s: running (pid $pid)"
      any=0
    else
      echo "$s: stopped"
    fi
  done
  if [ -n "$(pid_of haproxy)" ]; then
    echo "HAProxy's view of the nodes:"
    curl -sf "http://127.0.0.1:$STATS_PORT/stats;csv" |
      awk -F, '$1 == "rtgate_nodes" && $2 != "BACKEND" { print "  " $2 ": " $18 " (" $37 ")" }'
  fi
  return $any
}

case "${1:-}" in
  start) start_all ;;
  stop) stop_all ;;
  status) status_all ;;
  token)
    [ -n "${2:-}" ] || die "usage: $0 token NAME"
    [ -f "$RUN/node1.json" ] || die "not started: $0 start"
    "$BIN" token --sub "$2" --config "$RUN/node1.json"
    ;;
  *) echo "usage: $0 start|stop|status|token NAME" >&2; exit 2 ;;
esac
