#!/usr/bin/env bash
# Service helpers for scripts/test.sh: each `ensure_*` checks a service, starts (or installs)
# it when missing, waits until it answers, and exports the address the tests read.
#
# The core runtime's tests need no service; connector issues add their `ensure_*` here and
# call them from `ensure_services`.

# Wait until TCP host:port accepts connections, or fail after $3 seconds (default 60).
wait_for_port() {
  local host=$1 port=$2 limit=${3:-60} waited=0
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if (( waited >= limit )); then
      log "$host:$port did not answer within ${limit}s"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

ensure_services() {
  log "no external service needed by the current suite"
}
