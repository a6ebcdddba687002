#!/bin/sh
# Entrypoint of the test peer image `mariadb:10.11`, built from Debian's mariadb-server
# because no registry can be reached here. It follows the official image's contract as far as
# the examples use it: MARIADB_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD), MARIADB_DATABASE,
# MARIADB_USER and MARIADB_PASSWORD (or their MYSQL_ twins). A fresh data directory is set up
# once with the server listening on a private socket only; then the server is started for the
# network as PID 1, so SIGTERM from `podman kube down` reaches it.
set -eu
root_password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
user="${MARIADB_USER:-${MYSQL_USER:-}}"
password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"
: "${root_password:?MARIADB_ROOT_PASSWORD must be set, as with the official image}"
data=/var/lib/mysql
# SQL string literal: quotes and backslashes doubled/escaped.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g")"; }

mkdir -p "$data" /run/mysqld
if [ ! -d "$data/mysql" ]; then
    echo "mariadb entrypoint: initialising $data"
    mariadb-install-db --user=root --datadir="$data" --skip-test-db \
        --auth-root-authentication-method=normal > /dev/null
    mariadbd --user=root --datadir="$data" --skip-networking --socket=/run/mysqld/setup.sock &
    setup_pid=$!
    until mariadb --socket=/run/mysqld/setup.sock -uroot -e 'SELECT 1' > /dev/null 2>&1; do
        sleep 0.2
    done
    {
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(quote "$root_password");"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $(quote "$root_password");"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "$database" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"; fi
        if [ -n "$user" ]; then
            echo "CREATE USER $(quote "$user")@'%' IDENTIFIED BY $(quote "$password");"
            if [ -n "$database" ]; then echo "GRANT ALL ON \`$database\`.* TO $(quote "$user")@'%';"; fi
        fi
    } | mariadb --socket=/run/mysqld/setup.sock -uroot
    kill "$setup_pid"
    wait "$setup_pid" || true
fi
exec mariadbd --user=root --datadir="$data" --bind-address=0.0.0.0 --skip-name-resolve
