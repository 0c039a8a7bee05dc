#!/usr/bin/env bash
# Install (apt) and start what the test suite talks to, and create what it expects; safe to rerun.
#   RabbitMQ on 127.0.0.1:5672 (guest/guest), PostgreSQL on 127.0.0.1:5432 with role vt_test/vt_test
#   owning database `test`, Debian's chromium for the browser tests.
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES=(chromium rabbitmq-server postgresql)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  log=$(mktemp)
  if ! { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2; echo "error: apt-get could not install ${missing[*]}" >&2; exit 1
  fi
  rm -f "$log"
fi

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "error: $what did not come up within ${secs} s" >&2
  return 1
}

if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  echo "starting RabbitMQ"
  $SUDO rabbitmq-server -detached || true
  wait_for RabbitMQ 90 rabbitmq-diagnostics -q ping
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL 60 pg_isready -q -h 127.0.0.1 -p 5432
fi
psql_admin() { $SUDO runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'vt_test'")" != 1 ]; then
  psql_admin -c "CREATE ROLE vt_test LOGIN PASSWORD 'vt_test'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE test OWNER vt_test"
fi
psql_admin -d test -c "GRANT ALL ON DATABASE test TO vt_test; GRANT ALL ON SCHEMA public TO vt_test"
