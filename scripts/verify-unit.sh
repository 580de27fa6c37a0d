#!/usr/bin/env bash
# Checks conf/rtgate.service as `make install` would install it: installs the build into a
# temporary DESTDIR, points the unit's paths into that DESTDIR (systemd-analyze verify fails
# when ExecStart's binary is missing, and the real /usr/local/bin/rtgate need not exist on a CI
# machine), then runs `systemd-analyze verify`. Any line it prints, warning or error, fails.
#
#   usage: scripts/verify-unit.sh [BUILD_DIR]     (default: build; run `make build` first)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PREFIX=/usr/local # what the unit's ExecStart names, and the Makefile's default

if ! command -v systemd-analyze >/dev/null; then
  echo "verify-unit: systemd-analyze not found (Debian package: systemd)" >&2
  exit 1
fi
if [ ! -x "$BUILD/rtgate" ]; then
  echo "verify-unit: $BUILD/rtgate not built" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rtgate-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
DESTDIR="$tmp/root" cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null

unit="$tmp/root$PREFIX/lib/systemd/system/rtgate.service"
if [ ! -f "$unit" ]; then
  echo "verify-unit: make install did not install lib/systemd/system/rtgate.service" >&2
  exit 1
fi

# systemd-analyze wants the file name to be the unit name, so the copy keeps it.
mkdir "$tmp/unit"
sed "s#^ExecStart=$PREFIX/#ExecStart=$tmp/root$PREFIX/#; s# $PREFIX/etc/# $tmp/root$PREFIX/etc/#" \
  "$unit" >"$tmp/unit/rtgate.service"

# verify does not look at arguments: check that the installed binary takes the installed config.
exec_start=$(sed -n 's/^ExecStart=//p' "$tmp/unit/rtgate.service")
if ! $exec_start --check-config >/dev/null; then
  echo "verify-unit: '$exec_start --check-config' failed" >&2
  exit 1
fi

set +e
out=$(cd "$tmp/unit" && systemd-analyze verify "$tmp/unit/rtgate.service" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  printf '%s\n' "$out" | sed "s#$tmp/unit/##g" >&2
  echo "verify-unit: systemd-analyze verify failed (rc $rc)" >&2
  exit 1
fi
echo "verify-unit: rtgate.service ok"
