#!/usr/bin/env bash
# Builds dist/ferrovs_<version>_amd64.deb with dpkg-deb: both binaries, the systemd unit,
# an example config in /etc/ferrovs, a boot-time hugepages drop-in (sysctl.d), the NIC and
# hugepage scripts, and the docs. Runtime dependencies come from dpkg-shlibdeps (DPDK's
# libraries) plus `dpdk` (its drivers and tools).
#   packaging/deb/build.sh            -> prints the .deb's path on its last line
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
cargo build --release -p mgmt --bin ferrovs --bin ferrovsctl 2>&1 | tail -1
S=$(mktemp -d); W=$(mktemp -d)
trap 'rm -rf "$S" "$W"' EXIT
install -D -m 755 target/release/ferrovs "$S/usr/bin/ferrovs"
install -D -m 755 target/release/ferrovsctl "$S/usr/bin/ferrovsctl"
strip --strip-debug "$S/usr/bin/ferrovs" "$S/usr/bin/ferrovsctl"
install -D -m 755 scripts/hugepages.sh "$S/usr/share/ferrovs/hugepages.sh"
install -D -m 755 scripts/bind-nics.sh "$S/usr/share/ferrovs/bind-nics.sh"
sed -e 's|/usr/local/bin/|/usr/bin/|g' -e 's|/usr/local/share/ferrovs/|/usr/share/ferrovs/|g' \
    -e '/^# systemd unit for the ferrovs daemon. Install with:/,/^#   systemctl daemon-reload/d' \
    scripts/systemd/ferrovs.service > "$W/ferrovs.service"
install -D -m 644 "$W/ferrovs.service" "$S/lib/systemd/system/ferrovs.service"
install -D -m 644 packaging/deb/ferrovs.yaml "$S/etc/ferrovs/ferrovs.yaml"
install -d "$S/etc/sysctl.d"
cat > "$S/etc/sysctl.d/80-ferrovs-hugepages.conf" <<'CONF'
# Hugepages for ferrovs (DPDK), reserved at boot: 1024 x 2 MiB = 2 GiB. Size it to
# dpdk.memory_mb plus the packet pool; `sysctl --system` applies it without a reboot.
vm.nr_hugepages = 1024
CONF
install -d "$S/usr/share/doc/ferrovs/docs" "$S/usr/share/doc/ferrovs/examples"
install -m 644 README.md "$S/usr/share/doc/ferrovs/"
install -m 644 docs/*.md "$S/usr/share/doc/ferrovs/docs/"
install -m 644 examples/*.yaml "$S/usr/share/doc/ferrovs/examples/"
# Runtime dependencies of the binaries, as Debian computes them.
mkdir -p "$W/debian" && printf 'Source: ferrovs\n\nPackage: ferrovs\nArchitecture: any\n' > "$W/debian/control"
DEPS=$(cd "$W" && dpkg-shlibdeps -O "$S/usr/bin/ferrovs" "$S/usr/bin/ferrovsctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
install -d "$S/DEBIAN"
cat > "$S/DEBIAN/control" <<CTRL
Package: ferrovs
Version: $VERSION
Architecture: amd64
Maintainer: ferrovs developers <ferrovs@localhost>
Depends: ${DEPS:+$DEPS, }dpdk
Suggests: bird2
Section: net
Priority: optional
Installed-Size: $(du -sk "$S" | cut -f1)
Description: layer-4 load balancer on DPDK (LVS NAT/DR/TUN)
 ferrovs is Linux Virtual Server rebuilt for kernel bypass: clients send TCP/UDP to a
 virtual IP; per-core DPDK workers share one lock-free flow table, pick a real server
 (rr, wrr, lc, wlc, sh, Maglev) and forward in NAT, DR or TUN mode. Managed by YAML,
 a REST API, Prometheus metrics and the ipvsadm-like ferrovsctl.
CTRL
printf '/etc/ferrovs/ferrovs.yaml\n/etc/sysctl.d/80-ferrovs-hugepages.conf\n' > "$S/DEBIAN/conffiles"
cat > "$S/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
# The unit is installed, not enabled: edit /etc/ferrovs/ferrovs.yaml first.
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SH
cat > "$S/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SH
chmod 755 "$S/DEBIAN/postinst" "$S/DEBIAN/postrm"
mkdir -p dist
OUT=dist/ferrovs_${VERSION}_amd64.deb
dpkg-deb --root-owner-group --build "$S" "$OUT" >/dev/null
echo "deb: built $OUT (Depends: ${DEPS:+$DEPS, }dpdk)"
echo "$OUT"
