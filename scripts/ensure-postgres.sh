#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the PostgreSQL half of the tests, and exports
# BERTY_NODE_TEST_POSTGRES_URL (an admin URL: each test creates and drops its own database).
#
# - If BERTY_NODE_TEST_POSTGRES_URL is set, it is used as is.
# - Else, if a server answers on 127.0.0.1:5432, it is used as user `postgres`.
# - Else the server is installed with apt-get (root only), started, and given a password.
# Never skips: if no server can be had, it fails loudly.
set -euo pipefail

pg_url_works() {
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

if [ -n "${BERTY_NODE_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_url_works "$BERTY_NODE_TEST_POSTGRES_URL"; then
    echo "error: BERTY_NODE_TEST_POSTGRES_URL=$BERTY_NODE_TEST_POSTGRES_URL does not answer" >&2
    exit 1
  fi
  return 0 2>/dev/null || exit 0
fi

default_url="postgres://postgres@127.0.0.1:5432/postgres"
password_url="postgres://postgres:berty-node-test@127.0.0.1:5432/postgres"

if ! command -v psql >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: PostgreSQL is not installed and this is not root; install it or set BERTY_NODE_TEST_POSTGRES_URL" >&2
    exit 1
  fi
  echo "== installing PostgreSQL with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster found under /etc/postgresql" >&2
    exit 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.5
  done
fi

if pg_url_works "$default_url"; then
  export BERTY_NODE_TEST_POSTGRES_URL="$default_url"
elif pg_url_works "$password_url"; then
  export BERTY_NODE_TEST_POSTGRES_URL="$password_url"
elif [ "$(id -u)" = 0 ]; then
  # A fresh Debian server asks for a password over TCP: give the postgres user one.
  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'berty-node-test'\"" >/dev/null
  export BERTY_NODE_TEST_POSTGRES_URL="$password_url"
fi

if [ -z "${BERTY_NODE_TEST_POSTGRES_URL:-}" ] || ! pg_url_works "$BERTY_NODE_TEST_POSTGRES_URL"; then
  echo "error: PostgreSQL runs but cannot be reached as user postgres on 127.0.0.1:5432; set BERTY_NODE_TEST_POSTGRES_URL" >&2
  exit 1
fi
echo "== PostgreSQL tests use ${BERTY_NODE_TEST_POSTGRES_URL%%@*}@... (${BERTY_NODE_TEST_POSTGRES_URL#*@})"
