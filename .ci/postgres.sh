#!/usr/bin/env bash
# A local PostgreSQL for tests/test_postgres_storage.py: installs (Debian's `postgresql`),
# listens on 127.0.0.1 only, role `tune_nas` (password login) and database `tune_nas`.
#
#   eval "$(.ci/postgres.sh)"                     # exports TUNE_NAS_TEST_PG_URL and PGPASSWORD
#   .ci/postgres.sh --env-file /tmp/tune_nas_pg.env && . /tmp/tune_nas_pg.env
#
# Idempotent: a second run reuses the cluster, role and database. The password is
# TUNE_NAS_PG_PASSWORD if set, otherwise a fresh random one on every run (the role's password is
# reset to it), so nothing secret is ever stored in the repository; it is only printed on stdout
# (or written to --env-file, mode 600). Everything else goes to stderr, so stdout is safe to eval.
# Needs root (or sudo) for apt-get and for acting as the `postgres` system user.
# Settings: TUNE_NAS_PG_PORT (default 5432), TUNE_NAS_PG_PASSWORD (default: random).
set -euo pipefail

PORT="${TUNE_NAS_PG_PORT:-5432}"
ROLE=tune_nas
DB=tune_nas
ENV_FILE=""
if [ "${1:-}" = "--env-file" ]; then
    ENV_FILE="${2:?--env-file needs a path}"
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--env-file PATH]" >&2
    exit 2
fi

log() { echo "postgres.sh: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

# 1. the server package (Debian/Ubuntu)
if ! command -v pg_lsclusters >/dev/null 2>&1; then
    log "installing postgresql (apt-get)"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

# 2. a cluster: the newest installed major version, cluster `main`
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION main"; then
    log "creating cluster $VERSION/main"
    as_root pg_createcluster --port "$PORT" "$VERSION" main >&2
fi

# 3. 127.0.0.1 only, on $PORT (Debian's postgresql.conf includes conf.d/)
CONF="/etc/postgresql/$VERSION/main/conf.d/90-tune_nas.conf"
WANT="listen_addresses = '127.0.0.1'
port = $PORT"
if [ "$(cat "$CONF" 2>/dev/null || true)" != "$WANT" ]; then
    log "writing $CONF (listen on 127.0.0.1:$PORT only)"
    printf '%s\n' "$WANT" | as_root tee "$CONF" >/dev/null
    if pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
        as_root pg_ctlcluster "$VERSION" main restart >&2
    fi
fi

# 4. running
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    as_root pg_ctlcluster "$VERSION" main start >&2
fi
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$PORT" || { log "server not ready on 127.0.0.1:$PORT"; exit 1; }

# 5. role and database; the password goes through psql's stdin, never a command line or file
PASSWORD="${TUNE_NAS_PG_PASSWORD:-$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')}"
case "$PASSWORD" in *"'"*) log "TUNE_NAS_PG_PASSWORD must not contain a single quote"; exit 2;; esac
as_postgres psql -q -X -v ON_ERROR_STOP=1 -p "$PORT" -d postgres >&2 <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
        CREATE ROLE $ROLE LOGIN;
    END IF;
END \$\$;
ALTER ROLE $ROLE WITH LOGIN PASSWORD '$PASSWORD';
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS
    (SELECT FROM pg_database WHERE datname = '$DB') \gexec
SQL
log "ready: role $ROLE, database $DB on 127.0.0.1:$PORT"

EXPORTS="export TUNE_NAS_TEST_PG_URL='postgresql+psycopg2://$ROLE@127.0.0.1:$PORT/$DB'
export PGPASSWORD='$PASSWORD'"
if [ -n "$ENV_FILE" ]; then
    (umask 077 && printf '%s\n' "$EXPORTS" > "$ENV_FILE")
    log "wrote $ENV_FILE (mode 600); load it with: . $ENV_FILE"
else
    printf '%s\n' "$EXPORTS"
fi
