#!/usr/bin/env bash
# The tests on a busy machine: pytest with CPU hogs beside it (one per core unless --hogs N), as
# when CI shares its machine with another build. A test that assumes the machine's speed (a
# fixed sleep, a short deadline, a race it usually wins) fails here first.
#   tests/busy_machine.sh [--hogs N] [pytest arguments...]
#   e.g. tests/busy_machine.sh tests/faults tests/integration/test_stack.py
# The hogs are stopped when pytest ends, however it ends. Runs the pytest of ./dev.sh's
# virtualenv (SALESPULSE_VENV, default .venv); run ./dev.sh setup first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SALESPULSE_VENV:-.venv}
hogs=$(nproc)
if [ "${1:-}" = --hogs ]; then
  hogs=$2
  shift 2
fi

pids=()
stop_hogs() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT
trap 'exit 130' INT TERM # through the EXIT trap: no hog outlives the run
for _ in $(seq "$hogs"); do
  python3 -c 'while True: pass' &
  pids+=("$!")
done
echo "busy_machine.sh: $hogs CPU hogs beside pytest (pids ${pids[*]})"
"$VENV/bin/python" -m pytest "$@"
