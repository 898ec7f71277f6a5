#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests: Debian's package (installed when absent), one cluster in
# its own directory, listening on loopback only, with a `pushpool` role that may create databases
# (each store test makes its own). Safe to run again: an existing cluster is reused, a stopped one
# started.
#
#   bash scripts/postgres.sh         start (or reuse); prints PUSHPOOL_TEST_POSTGRES_URL=postgres://…
#   bash scripts/postgres.sh stop    stop the cluster (its directory is kept for the next start)
#   bash scripts/postgres.sh status  exit 0 when the cluster is running, 1 when it is not
#
# Only that one line goes to stdout, so a caller can `export "$(bash scripts/postgres.sh)"`.
# Settings: PUSHPOOL_POSTGRES_DIR (default /tmp/pushpool-postgres), PUSHPOOL_POSTGRES_PORT (55432).
set -euo pipefail

dir=${PUSHPOOL_POSTGRES_DIR:-/tmp/pushpool-postgres}
port=${PUSHPOOL_POSTGRES_PORT:-55432}
data="$dir/data"
socket="$dir/socket"

say() { echo "[postgres.sh] $*" >&2; }

newest_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin=$(newest_bin)
if [ "${1:-start}" = start ] && { [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; }; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb), and this script installs it only as root, with apt-get: install the postgresql package, or point PUSHPOOL_TEST_POSTGRES_URL at a server of your own"
    exit 1
  fi
  say "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(newest_bin)
fi
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  case "${1:-start}" in
    stop) exit 0 ;;
    status) exit 1 ;;
    *) say "no PostgreSQL server binaries under /usr/lib/postgresql"; exit 1 ;;
  esac
fi

# initdb refuses to run as root, so as root the cluster belongs to Debian's postgres user; anyone
# else owns their cluster themselves.
owner=$(id -un)
[ "$(id -u)" -eq 0 ] && owner=postgres
as_owner() {
  if [ "$owner" = "$(id -un)" ]; then (cd / && "$@"); else (cd / && runuser -u "$owner" -- "$@"); fi
}

if [ "${1:-start}" = status ]; then
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then exit 0; fi
  exit 1
fi

if [ "${1:-start}" = stop ]; then
  if [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
  fi
  exit 0
fi

mkdir -p "$dir"
chown "$owner" "$dir"
chmod 700 "$dir"

if [ ! -f "$data/PG_VERSION" ]; then
  say "creating a cluster in $data"
  # Trust only on the Unix socket, which lives in this owner-only directory; TCP needs a password.
  as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner mkdir -p "$socket"
  as_owner sh -c "od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > '$dir/password' && chmod 600 '$dir/password'"
fi

if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  say "starting on 127.0.0.1:$port"
  # Durability is pointless for a throw-away cluster; without it CREATE DATABASE per test is fast.
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start -o "\
    -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$socket \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >&2 \
    || { tail -n 20 "$dir/server.log" >&2; exit 1; }
fi

password=$(as_owner cat "$dir/password")
as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -U postgres -d postgres >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pushpool') THEN CREATE ROLE pushpool LOGIN CREATEDB; END IF;
END \$\$;
ALTER ROLE pushpool PASSWORD '$password';
SELECT 'CREATE DATABASE pushpool OWNER pushpool' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pushpool') \gexec
SQL

echo "PUSHPOOL_TEST_POSTGRES_URL=postgres://pushpool:$password@127.0.0.1:$port/pushpool"
