#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the store tests and print its URL (only the URL goes to
# stdout, so `url=$(bash scripts/start-postgres.sh)` works). Installs Debian's postgresql if it is missing.
# Runs the server as the `postgres` user when started as root (CI), else as the current user.
# Environment: SHOPLENS_PG_DIR (data folder, default a new /tmp/shoplens-pg.*), SHOPLENS_PG_PORT (default: a free
# port), SHOPLENS_PG_DB (default shoplens). Stop it with: pg_ctl -D DIR stop (printed on stderr).
set -euo pipefail
log() { echo "start-postgres: $*" >&2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bin=$(find_bin)
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
  bin=$(find_bin)
fi
[[ -x "$bin/initdb" ]] || { log "no initdb found under /usr/lib/postgresql"; exit 1; }

data=${SHOPLENS_PG_DIR:-$(mktemp -d /tmp/shoplens-pg.XXXXXX)}
port=${SHOPLENS_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
db=${SHOPLENS_PG_DB:-shoplens}
mkdir -p "$data"

if [[ $(id -u) -eq 0 ]]; then
  chown -R postgres:postgres "$data"
  as_pg=(runuser -u postgres --)
  user=postgres
else
  as_pg=()
  user=$(id -un)
fi

if [[ ! -f "$data/PG_VERSION" ]]; then
  "${as_pg[@]}" "$bin/initdb" -D "$data" -U "$user" -A trust --no-locale -E UTF8 >&2
fi
"${as_pg[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >&2
if ! "${as_pg[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
     "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  "${as_pg[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
fi
log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $data" \
    "(stop: ${as_pg[*]} $bin/pg_ctl -D $data stop)"
echo "postgresql+psycopg://$user@127.0.0.1:$port/$db"
