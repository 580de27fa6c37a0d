#!/usr/bin/env bash
# Runs every libFuzzer harness of tests/fuzz/ for a bounded time and fails if any finds a crash
# (a sanitizer report, a broken property, a leak, a timeout or running out of memory).
#
#   scripts/fuzz.sh [SECONDS]        each harness SECONDS (default 60), one after the other
#
# Environment: FUZZ_HARNESSES="fuzz_jwt fuzz_conf" runs only those; FUZZ_PARALLEL=N runs N at
# once; FUZZ_BUILD=dir (default build-fuzz). Builds the harnesses first if needed (clang with
# libFuzzer: Debian 12 packages clang and libclang-rt-14-dev). Each harness works on a temporary
# copy of its seed corpus, so the repository is never modified; logs, the grown corpora and any
# crash files go to a temporary directory whose path is printed. Reproduce a crash with
#   build-fuzz/tests/fuzz/<harness> <crash file>
# (RTGATE_FUZZ_TRACE=1 prints what the gateway harnesses wrote to the client).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
BUILD="${FUZZ_BUILD:-build-fuzz}"
PARALLEL="${FUZZ_PARALLEL:-1}"
ALL="fuzz_jwt fuzz_cursor fuzz_topic fuzz_conf fuzz_ws_frame fuzz_api_body fuzz_query fuzz_redis"
HARNESSES="${FUZZ_HARNESSES:-$ALL}"

if ! [[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || [ "$SECONDS_EACH" -lt 1 ]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found (Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

# (Re)configure when the build directory is missing or was configured without the harnesses.
if ! grep -qs '^RTGATE_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  CC=clang cmake -S . -B "$BUILD" -DRTGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target $HARNESSES >/dev/null

OUT="$(mktemp -d "${TMPDIR:-/tmp}/rtgate-fuzz.XXXXXX")"
echo "fuzz: ${SECONDS_EACH}s per harness; logs, corpora and crash files in $OUT"

run_one() {
  local h="$1" bin="$BUILD/tests/fuzz/$1" dict=()
  mkdir -p "$OUT/corpus/$h" "$OUT/crashes/$h"
  cp -R "tests/fuzz/corpus/$h/." "$OUT/corpus/$h/" 2>/dev/null || true
  [ -f "tests/fuzz/$h.dict" ] && dict=(-dict="tests/fuzz/$h.dict")
  set +e
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/crashes/$h/" "${dict[@]}" "$OUT/corpus/$h" >"$OUT/$h.log" 2>&1
  echo $? >"$OUT/$h.rc"
  set -e
}

summary() {
  local h="$1" rc log="$OUT/$1.log" stats execs rate cov ft corp crash
  rc="$(cat "$OUT/$h.rc")"
  stats="$(grep -aE '^#[0-9]+' "$log" | tail -1)"
  execs="$(grep -aoE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)"
  rate="$(grep -aoE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)"
  [ -n "$execs" ] || execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")"
  [ -n "$rate" ] || rate="$(grep -oE 'exec/s: [0-9]+' <<<"$stats" | grep -oE '[0-9]+' || true)"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$stats" | grep -oE '[0-9]+' || true)"
  ft="$(grep -oE 'ft: [0-9]+' <<<"$stats" | grep -oE '[0-9]+' || true)"
  corp="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$stats" | cut -d' ' -f2 || true)"
  crash="$(find "$OUT/crashes/$h" -type f -printf "%f\n" 2>/dev/null | head -1)"
  if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
    printf '%-14s ok     execs %-9s exec/s %-7s cov %-5s ft %-6s corpus %s\n' \
      "$h" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
    return 0
  fi
  printf '%-14s CRASH  execs %-9s exec/s %-7s cov %-5s ft %-6s (exit %s) %s\n' \
    "$h" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$rc" \
    "${crash:+$OUT/crashes/$h/$crash}"
  grep -aE 'ERROR: |runtime error|property violated|SUMMARY' "$log" | head -3 | sed 's/^/    /'
  return 1
}

running=0
for h in $HARNESSES; do
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for h in $HARNESSES; do
  summary "$h" || failed=1
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: crashes found; see $OUT (logs: $OUT/<harness>.log)" >&2
  exit 1
fi
echo "fuzz: no crashes"
