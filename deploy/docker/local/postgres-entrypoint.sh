#!/bin/sh
# Entry point of the locally built Postgres 15 image (tools/container_images.py): honours the
# parts of the official postgres image's interface this project uses, so docker-compose.yml,
# docker-compose.test.yml and testcontainers' PostgresContainer drive it unchanged.
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
#   POSTGRES_DB (default: the user), POSTGRES_HOST_AUTH_METHOD (default scram-sha-256; trust
#   needs no password), PGDATA (default /var/lib/postgresql/data).
# `postgres ARGS` (the default command) or bare `-c ...` options: initialise an empty PGDATA
# once, then run the server as the postgres user listening on every interface. Anything else
# runs as given.
set -eu

if [ "${1:-postgres}" != postgres ] && [ "${1#-}" = "${1:-}" ]; then
    exec "$@"
fi
[ "${1:-}" = postgres ] && shift

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
password=${POSTGRES_PASSWORD:-}
method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
if [ -z "$password" ] && [ "$method" != trust ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
fi

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    chown postgres "$pwfile"
    if [ -n "$password" ]; then
        as_postgres initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
            --auth-host="$method" --no-sync >/dev/null
    else
        as_postgres initdb --username="$user" --auth-local=trust --auth-host="$method" \
            --no-sync >/dev/null
    fi
    rm -f "$pwfile"
    printf 'host all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # a server on the socket only, to create the database, then stopped again
        as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
        as_postgres psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -q \
            -c "CREATE DATABASE \"$database\"" >/dev/null
        as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    echo "postgres-entrypoint: initialised $PGDATA for user $user, database $database"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$PGDATA" -c listen_addresses='*' "$@"
