#!/usr/bin/env bash
# The one command that runs every ferrovs test:
#   installs what is missing (scripts/setup.sh), reserves hugepages when it can, builds,
#   runs `cargo test --workspace` (unit, golden, DPDK smoke and daemon tests), then the
#   end-to-end suites in scripts/e2e/ (network namespaces; need root).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_TERM_COLOR=never

bash scripts/setup.sh
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/hugepages.sh 256 2M || echo "test: no hugepages; DPDK tests run with --no-huge"
fi

start=$(date +%s)
cargo build --workspace --all-targets --release
# Pure-Rust layers also build and pass without DPDK.
cargo test -p dataplane --no-default-features --release -- --test-threads=2
cargo test --workspace --release -- --test-threads=2

if [ -d scripts/e2e ] && ls scripts/e2e/*.sh >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test: SKIPPED end-to-end suites: they need root (network namespaces)"
  else
    for t in scripts/e2e/*.sh; do
      echo "=== e2e: $t"
      bash "$t"
    done
  fi
fi
echo "test: all suites passed in $(( $(date +%s) - start ))s"
