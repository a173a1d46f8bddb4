#!/usr/bin/env bash
# One entry point for people and CI on a fresh Debian 12 machine with Python 3.11:
#   ./dev.sh demo   - the pipeline end to end on a local broker and ClickHouse, generated traffic
#   ./dev.sh test   - lint, type checks and the whole test suite (what CI runs)
#   ./dev.sh setup  - only install what is missing
# Anything after the command is passed on (to `salespulse demo` or to pytest).
set -euo pipefail
cd "$(dirname "$0")"

VENV=${SALESPULSE_VENV:-.venv}
PYTHON=${PYTHON:-python3}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "dev.sh: please install these Debian packages (or their equivalent): $*" >&2
    exit 2
  fi
  as_root apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    as_root apt-get update -qq && as_root apt-get install -y -qq "$@"
  }
}

# $1: the extras being installed; "dev" (tests, CI) also needs the browser the pages are tested in.
system_packages() {
  local extras=${1:-dev}
  local missing=()
  command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] \
    || missing+=(clickhouse-server clickhouse-client)
  # The local stack runs a real Alertmanager (demo and tests deliver alerts to it).
  [ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
  # promtool checks and unit-tests the pipeline's Prometheus rules (deploy/prometheus/).
  command -v promtool >/dev/null || missing+=(prometheus)
  # The worker's web pages are tested in a real headless Chromium, driven through chromedriver.
  if [ "$extras" = dev ]; then
    # The CDR table follower is tested against a real MariaDB holding FreePBX's CDR table.
    [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    # The cluster tests run ClickHouse replicas coordinated by ZooKeeper (replicated tables,
    # ON CLUSTER DDL).
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
  fi
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "dev.sh: installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

# $1: the extras to install: "stack" for the demo (no test tools), "dev" for tests and CI.
python_env() {
  local extras=$1
  local stamp="$VENV/.installed-$extras-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "dev.sh: installing Python packages [$extras] into $VENV (first run takes a minute)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    rm -f "$VENV"/.installed-"$extras"-*
    touch "$stamp"
  fi
}

setup() { system_packages "${1:-dev}"; python_env "${1:-dev}"; }

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup stack; exec "$VENV/bin/salespulse" demo "$@" ;;
  test)
    setup dev
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
