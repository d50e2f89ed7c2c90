#!/usr/bin/env bash
# Set up the DAG/validate/load_duckdb benchmarks' peer environment: dbt-core 1.10 with
# dbt-duckdb (and tpchgen-cli) in bench/dag/.venv-dbt, so their versions never touch
# Conveyor's .venv.
#
#   bash bench/dag/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv-dbt"
python="${PYTHON:-python3}"

if [[ ! -x "$root/.venv/bin/conveyor" ]]; then
  echo "Conveyor's .venv is missing: run 'make setup' at the repository root first." >&2
  exit 2
fi

stamp="$venv/.installed"
if [[ ! -f "$stamp" || "$here/requirements-dbt.txt" -nt "$stamp" ]]; then
  test -x "$venv/bin/python" || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements-dbt.txt"
  touch "$stamp"
fi
"$venv/bin/dbt" --version
"$venv/bin/python" -c "import duckdb; print('duckdb', duckdb.__version__)"
