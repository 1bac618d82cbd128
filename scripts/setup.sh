#!/usr/bin/env bash
# Installs what ferrovs needs to build, test and run on Debian 12 (idempotent).
# Packages: DPDK 22.11 (libdpdk-dev, dpdk), clang/libclang for bindgen, pkg-config,
# iproute2/ethtool/nginx-light/curl/wrk/tcpdump for the end-to-end tests and demo, bird2
# (BIRD 2: ferrovs's BGP speaker, and the router of the BGP suite).
set -euo pipefail

PKGS=(libdpdk-dev dpdk-dev dpdk libclang-dev clang pkg-config build-essential
      iproute2 iputils-ping ethtool nginx-light curl wrk libpcap-dev python3 python3-venv procps kmod nftables bird2)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx-light enables and starts a default server on package install; ferrovs tests
  # start their own in namespaces and must not find port 80 taken on the host.
  if command -v systemctl >/dev/null && systemctl is-active -q nginx 2>/dev/null; then
    $SUDO systemctl stop nginx || true
  fi
  pgrep -x nginx >/dev/null && { $SUDO nginx -s quit 2>/dev/null || true; }
  # Likewise bird2 starts a system BIRD; ferrovs runs its own.
  if command -v systemctl >/dev/null && systemctl is-active -q bird 2>/dev/null; then
    $SUDO systemctl stop bird || true
  fi
else
  echo "setup: all packages present"
fi

if ! pkg-config --atleast-version=22.11 libdpdk; then
  echo "setup: libdpdk >= 22.11 not found by pkg-config (install libdpdk-dev)" >&2
  exit 1
fi
echo "setup: DPDK $(pkg-config --modversion libdpdk), $(rustc --version)"
