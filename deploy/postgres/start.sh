#!/bin/sh
# First start: a cluster with the gateway's role and database, SCRAM passwords, reachable
# from the compose network only. Then PostgreSQL in the foreground (SIGINT: a fast shutdown).
set -eu
: "${GATEWAY_DB_PASSWORD:?set GATEWAY_DB_PASSWORD}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$GATEWAY_DB_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 \
        --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
password_encryption = 'scram-sha-256'
CONF
    echo "host all all samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
    postgres -D "$PGDATA" -c listen_addresses='' &
    until pg_isready -q -h /var/run/postgresql; do sleep 1; done
    psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -d postgres \
        -v password="$GATEWAY_DB_PASSWORD" <<'SQL'
CREATE ROLE gateway LOGIN PASSWORD :'password';
CREATE DATABASE gateway OWNER gateway;
SQL
    pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -D "$PGDATA"
