#!/bin/sh
# The image's entrypoint (under tini): with no arguments, migrations then the server; with
# arguments, that command instead (`docker run IMAGE odeus-triggers keys list --workspace …`).
set -eu
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
# Never the embedded SQLite default here: inside a container its file is lost with the container,
# and serve's first-run bootstrap would print a live API key into the container log.
db_url="${DATABASE_URL:-${ODEUS_DATABASE_URL:-}}"
case "$db_url" in
  "" | "sqlite+aiosqlite:///./odeus-triggers.db")
    echo "odeus-triggers: error: set DATABASE_URL (postgresql+asyncpg://user:password@host:5432/db); the image does not run on the embedded SQLite default" >&2
    exit 64 ;;
esac
# Under a Postgres advisory lock, so replicas may start together.
odeus-triggers migrate
exec odeus-triggers serve --host 0.0.0.0 --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}"
