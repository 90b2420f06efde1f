#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: makes sure every service the tests need is
# installed and running (starting or installing what is missing), exports their addresses,
# then runs `cargo test --workspace --all-features`.
#
# Services are added here as connectors arrive; each `ensure_*` function is idempotent.
# Extra arguments are passed to `cargo test` (e.g. `scripts/test.sh --test delivery`); without
# any, the feature-off ui cases run too (`cargo test --no-default-features --test ui`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

# Build outside the clone so repeated runs (and fresh clones on the same machine) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/etl/target}"
mkdir -p "$CARGO_TARGET_DIR"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# shellcheck source=scripts/services.sh
source "$here/services.sh"
ensure_services

log "cargo test --workspace --all-features $*"
cargo test --workspace --all-features "$@"

# The compile errors of steps whose cargo feature is off (`sse` is a default feature): trybuild
# builds the ui cases with this run's features. Only when no test filter was given.
if [ $# -eq 0 ]; then
  log "cargo test --no-default-features --test ui (feature-off diagnostics)"
  cargo test --no-default-features --test ui
fi
