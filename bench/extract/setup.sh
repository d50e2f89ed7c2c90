#!/usr/bin/env bash
# Set up the extract benchmark: the peer tools' virtual environment and the TPC-H data.
#
#   bash bench/extract/setup.sh                 # peers venv + SF1 lineitem in PostgreSQL and MariaDB
#   bash bench/extract/setup.sh --scale 3 --engines postgres
#
# The peer tools (DuckDB 1.4.4 with its postgres/mysql scanner wheels, ConnectorX, dlt,
# tpchgen-cli) go into bench/extract/.venv-peers so their versions never touch Conveyor's
# .venv. Arguments are passed to prepare.py (see `prepare.py --help`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3}"

if [[ ! -x "$root/.venv/bin/conveyor" ]]; then
  echo "Conveyor's .venv is missing: run 'make setup' at the repository root first." >&2
  exit 2
fi

stamp="$venv/.installed"
if [[ ! -f "$stamp" || "$here/requirements-peers.txt" -nt "$stamp" ]]; then
  test -x "$venv/bin/python" || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-peers.txt"
  # the scanner extensions must load without the network
  "$venv/bin/python" "$here/peers.py" check-extensions
  touch "$stamp"
fi

exec "$venv/bin/python" "$here/prepare.py" "$@"
