#!/usr/bin/env bash
# Profile one `conveyor load` of the generated DAG with py-spy (wall clock: idle frames kept),
# writing a flame graph and collapsed stacks next to this script (profile-*, kept out of git).
#
#   bash bench/dag/profile.sh [N] [SEED] [COMMAND] [TESTS]     # defaults: 1000 1 load 0
#
# TESTS (0-2): profile the project generated with that many data tests per relation
# (generate.py --tests), e.g. `bash bench/dag/profile.sh 1000 1 load 2`.
#
# py-spy goes into Conveyor's .venv (pip install py-spy) when missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-1000}"; seed="${2:-1}"; verb="${3:-load}"; tests="${4:-0}"
work="$here/work/n$n-s$seed"; suffix=""
if [[ "$tests" != 0 ]]; then work="$work-t$tests"; suffix="-t$tests"; fi
[[ -f "$work/dag.json" ]] || "$root/.venv/bin/python" "$here/generate.py" --n "$n" --seed "$seed" --tests "$tests" --out "$work"
[[ -x "$root/.venv/bin/py-spy" ]] || "$root/.venv/bin/python" -m pip install -q py-spy
args=(-p "$work/conveyor" "$verb")
[[ "$verb" == "load" || "$verb" == "run" ]] && args+=(--jobs 2)
for fmt in flamegraph raw; do
  rm -rf "$work/conveyor/warehouse"
  ext=$([[ $fmt == flamegraph ]] && echo svg || echo txt)
  "$root/.venv/bin/py-spy" record --idle --threads --rate 200 --format "$fmt" \
    -o "$here/profile-$verb-n$n$suffix.$ext" -- "$root/.venv/bin/conveyor" "${args[@]}"
done
echo "wrote $here/profile-$verb-n$n$suffix.svg and .txt"
