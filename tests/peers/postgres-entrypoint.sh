#!/bin/sh
# Entrypoint of the test peer image `postgres:15`, built from Debian's postgresql-15 because
# no registry can be reached here. It follows the official image's contract as far as the
# examples use it: POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres),
# POSTGRES_DB (default the user), PGDATA; a fresh data directory is initialised once, with
# password (SCRAM) authentication for every network client. postgres ends up as PID 1, so
# SIGTERM from `podman kube down` reaches it.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set, as with the official image}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
data="${PGDATA:-/var/lib/postgresql/data}"
bin=/usr/lib/postgresql/15/bin
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"

mkdir -p "$data" /run/postgresql
chown postgres:postgres "$data" /run/postgresql
chmod 700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
    echo "postgres entrypoint: initialising $data for user $user, database $db"
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    $as_postgres "$bin/initdb" -D "$data" -U "$user" --pwfile="$pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust > /dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\"" |
            $as_postgres "$bin/postgres" --single -D "$data" -c jit=off postgres > /dev/null
    fi
fi
exec $as_postgres "$bin/postgres" -D "$data" -c listen_addresses='*' -c jit=off \
    -c unix_socket_directories=/run/postgresql
