#!/usr/bin/env bash
# Start the local PostgreSQL server (Debian's postgresql package) and create desist's role and
# database if they are absent. Idempotent: safe to run before every `make serve` and in CI.
# Settings come from the environment, with these defaults:
#   DESIST_PG_USER=desist DESIST_PG_PASSWORD=desist DESIST_PG_DB=desist
set -euo pipefail
user=${DESIST_PG_USER:-desist}
password=${DESIST_PG_PASSWORD:-desist}
database=${DESIST_PG_DB:-desist}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "desist: PostgreSQL is not installed: apt-get install postgresql" >&2
    exit 1
fi
if ! pg_lsclusters --no-header | grep -q online; then
    service postgresql start >/dev/null
fi
as_postgres() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtA $*"; }
for _ in $(seq 30); do as_postgres "-c 'SELECT 1'" >/dev/null 2>&1 && break; sleep 1; done

if [ "$(as_postgres "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$user'\"")" != 1 ]; then
    as_postgres "-c \"CREATE ROLE \\\"$user\\\" LOGIN CREATEDB PASSWORD '$password'\""
fi
if [ "$(as_postgres "-c \"SELECT 1 FROM pg_database WHERE datname = '$database'\"")" != 1 ]; then
    as_postgres "-c \"CREATE DATABASE \\\"$database\\\" OWNER \\\"$user\\\"\""
fi
echo "desist: PostgreSQL is running with database '$database' for role '$user'"
