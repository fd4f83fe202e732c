#!/usr/bin/env bash
# Builds the MicroPython 1.28.0 unix port from the source tarball beside this script (the
# real interpreter, with sockets, a POSIX file system, asyncio and TLS through mbedtls)
# and prints the path of the `micropython` binary; its mpy-cross is built beside it.
#
#   firmware/unix-port/build.sh [CACHE_DIR]
#       default: $BOUCLE_MICROPYTHON_CACHE, else $XDG_CACHE_HOME/boucle-micropython,
#       else ~/.cache/boucle-micropython
#
# Board-like: 32-bit (small ints of 31 bits, so time.ticks_ms() wraps at 2**30 ms, 12.4
# days, as on the ESP32) with single-precision floats (as the ESP32 port). Built once per
# tarball (the folder is named by its SHA-256); concurrent callers wait on a lock and the
# finished build appears by one rename, so a build cut short is never reused.
# Needs gcc with 32-bit support, make and pkg-config
# (Debian: apt-get install build-essential gcc-multilib pkg-config); about 45 s on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/micropython-1.28.0-unix-src.tar.gz"
out=${1:-${BOUCLE_MICROPYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/boucle-micropython}}
sum=$(sha256sum "$src" | cut -c1-16)
rel=micropython-1.28.0/ports/unix/build-standard/micropython
bin="$out/$sum/$rel"
mkdir -p "$out"
if [ ! -x "$bin" ]; then
  exec 9>"$out/.lock-$sum"
  flock 9
  if [ ! -x "$bin" ]; then
    work=$(mktemp -d "$out/.building-$sum.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    tar xzf "$src" -C "$work"
    top="$work/micropython-1.28.0"
    log="$out/build-$sum.log"
    if ! { make -C "$top/mpy-cross" -j"$(nproc)" &&
           make -C "$top/ports/unix" -j"$(nproc)" VARIANT=standard MICROPY_FORCE_32BIT=1 \
                MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 FROZEN_MANIFEST="$top/boucle-manifest.py" \
                CFLAGS_EXTRA="-DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT"; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "build.sh: the MicroPython build failed; the whole log is in $log" >&2
      exit 1
    fi
    rm -rf "$out/$sum"
    mv "$work" "$out/$sum"
    trap - EXIT
  fi
fi
echo "$bin"
