#!/usr/bin/env bash
# Make sure the PostgreSQL and MariaDB services the tests use are installed and running
# on 127.0.0.1 (PostgreSQL: trust auth; MariaDB: root without a password).
set -euo pipefail

need_apt=()
command -v psql >/dev/null || need_apt+=(postgresql postgresql-client)
command -v mariadb >/dev/null || need_apt+=(mariadb-server mariadb-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "services: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
maria_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
fi
if ! maria_up; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
fi
for _ in $(seq 1 60); do
  if pg_up && maria_up; then
    echo "services: PostgreSQL and MariaDB are up"
    exit 0
  fi
  sleep 1
done
pg_up || echo "services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
maria_up || echo "services: MariaDB is not reachable on 127.0.0.1:3306" >&2
exit 1
