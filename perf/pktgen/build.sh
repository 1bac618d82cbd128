#!/usr/bin/env bash
# Builds pktgen-dpdk against the system DPDK (Debian's 22.11) from a source tree or a
# release tarball you point it at (pktgen is not a Debian package; pktgen-23.06.1 is the
# last release that builds against DPDK 22.11). Applies the fixes in patches/ (Lua needs
# the dpdk dependency; memif's unsupported MTU call must not be fatal), then meson/ninja
# with Lua. The source is copied: your tree is not modified.
#   perf/pktgen/build.sh /path/to/Pktgen-DPDK-pktgen-23.06.1 [BUILD_DIR]
#   perf/pktgen/build.sh pktgen-23.06.1.tar.gz [BUILD_DIR]
# Prints the path of the pktgen binary on its last line. Exits 0 without building (and
# says so) when no source is given.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${1:-${PKTGEN_SRC:-}}
OUT=${2:-/tmp/ferrovs-pktgen}
if [ -z "$SRC" ] || [ ! -e "$SRC" ]; then
  echo "pktgen build: no pktgen-dpdk source given (a checkout or a release tarball, e.g. pktgen-23.06.1);"
  echo "pktgen build: nothing built. Usage: $0 SRC_DIR_OR_TARBALL [BUILD_DIR]"
  exit 0
fi
need=()
for p in meson ninja-build liblua5.3-dev pkg-config libdpdk-dev tmux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rm -rf "$OUT"; mkdir -p "$OUT/src"
if [ -d "$SRC" ]; then
  # A git checkout: copy the tracked tree (some mirrors lack pktgen's pcap blobs: not needed).
  (cd "$SRC" && tar --exclude=.git --exclude=./pcap -cf - .) | tar -xf - -C "$OUT/src"
else
  tar -xf "$SRC" -C "$OUT/src" --strip-components=1 --exclude='*/pcap/*'
fi
cd "$OUT/src"
echo "pktgen build: $(cat VERSION 2>/dev/null || echo unknown version) against DPDK $(pkg-config --modversion libdpdk)"
for p in "$HERE"/patches/*.patch; do
  if patch -p1 --forward --dry-run -s < "$p" >/dev/null 2>&1; then
    patch -p1 --forward -s < "$p"
    echo "pktgen build: applied $(basename "$p")"
  else
    echo "pktgen build: $(basename "$p") does not apply (already fixed in this version?): skipped"
  fi
done
meson setup build -Denable_lua=true -Dwerror=false -Dbuildtype=release > "$OUT/meson.log" 2>&1 \
  || { tail -30 "$OUT/meson.log"; echo "pktgen build: meson setup failed (log: $OUT/meson.log)"; exit 1; }
ninja -C build -j "${CARGO_BUILD_JOBS:-2}" > "$OUT/ninja.log" 2>&1 \
  || { tail -30 "$OUT/ninja.log"; echo "pktgen build: ninja failed (log: $OUT/ninja.log)"; exit 1; }
BIN=$(find "$OUT/src/build" -type f -name pktgen -perm -u+x | head -1)
[ -n "$BIN" ] || { echo "pktgen build: no pktgen binary produced"; exit 1; }
echo "pktgen build: done"
echo "$BIN"
