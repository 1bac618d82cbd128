#!/usr/bin/env bash
# The Debian package as a user installs it: build it, `apt-get install ./ferrovs_*.deb`,
# `ferrovs --check` on the installed example, ferrovsctl and the unit present, then
# remove (purge) it and check nothing is left.
set -euo pipefail
cd "$(dirname "$0")/../.."
dpkg-query -W -f='${Status}' ferrovs 2>/dev/null | grep -q "install ok installed" && {
  echo "e2e package: SKIPPED: a ferrovs package is already installed on this machine"; exit 0; }
DEB=$(bash packaging/deb/build.sh | tail -1)
cleanup() { DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ferrovs >/dev/null 2>&1 || true; }
trap cleanup EXIT
fail() { echo "e2e package: FAILED: $*"; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$DEB" > /tmp/ferrovs-deb-install.log 2>&1 \
  || { cat /tmp/ferrovs-deb-install.log; fail "apt-get install ./$DEB"; }
out=$(/usr/bin/ferrovs --config /etc/ferrovs/ferrovs.yaml --check 2>&1) || fail "ferrovs --check on the installed example: $out"
echo "e2e package: installed $DEB; $out"
/usr/bin/ferrovsctl --help >/dev/null || fail "ferrovsctl does not run"
for f in /lib/systemd/system/ferrovs.service /etc/sysctl.d/80-ferrovs-hugepages.conf \
         /usr/share/ferrovs/hugepages.sh /usr/share/doc/ferrovs/docs/config.md; do
  [ -e "$f" ] || fail "$f not installed"
done
grep -q '^ExecStart=/usr/bin/ferrovs --config /etc/ferrovs/ferrovs.yaml$' /lib/systemd/system/ferrovs.service \
  || fail "the unit does not start /usr/bin/ferrovs"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ferrovs >/dev/null 2>&1 || fail "apt-get purge ferrovs"
[ ! -e /usr/bin/ferrovs ] && [ ! -e /etc/ferrovs/ferrovs.yaml ] || fail "files left after purge"
echo "e2e package: passed (installed, checked, purged)"
