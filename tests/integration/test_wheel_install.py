"""The wheel, installed into a fresh virtualenv outside the checkout, is a working install.

The wheel is built from a copy of the packages (a build leaves build/ and *.egg-info behind),
installed with its dependencies from PyPI (pip's cache makes a second run quick), and run from
a directory outside the checkout with no PYTHONPATH: ``--version``, the shipped example files
as defaults, ``schema apply`` against the test stack's ClickHouse, then a worker that counts
one CDR line imported by the same install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from salespulse import __version__
from salespulse.sections import REPO_ROOT
from salespulse.settings import Settings, to_environment
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import eventually, isolated_settings, query

PACKAGES = ("salespulse", "ingest", "processors", "sinks", "queries")
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
# The settings that point the install at the test stack and this test's own topics and database.
STACK_SECTIONS = ("SALESPULSE_KAFKA__", "SALESPULSE_CLICKHOUSE__", "SALESPULSE_TOPICS__")
# Ivanova's extension 101 answers a client: one answered incoming call of 25 s talk.
CDR_LINE = (
    '"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/trunk-00000001",'
    '"SIP/101-00000002","Dial","SIP/101,30","2026-11-26 09:15:02","2026-11-26 09:15:09",'
    '"2026-11-26 09:15:34","32","25","ANSWERED","DOCUMENTATION"\n'
)
DIRECTORY = """\
departments:
  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}
managers:
  - id: ivanova
    name: Anna Ivanova
    department: msk
    identities:
      - {family: pbx, id: "101"}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin directory of a virtualenv holding the wheel and nothing of the checkout."""
    root = tmp_path_factory.mktemp("wheel-install")
    assert not root.resolve().is_relative_to(REPO_ROOT), "the install must be outside the checkout"
    source = root / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(root / "dist"), str(source)], check=True)
    (wheel,) = (root / "dist").glob("salespulse-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install", wheel],
        check=True,
        env=clean_environment(),
    )
    yield bin_dir
    shutil.rmtree(root, ignore_errors=True)


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without what would lead a child back into the checkout
    (PYTHONPATH, the tests' virtualenv) or to another configuration, plus ``settings``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SALESPULSE_", "PYTHON", "VIRTUAL_ENV"))
    }
    return kept | settings


def run(bin_dir: Path, cwd: Path, *args: str, **settings: str) -> str:
    done = subprocess.run(
        [str(bin_dir / "salespulse"), *args],
        cwd=cwd,
        env=clean_environment(**settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_installed_package_is_the_wheels(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [installed / "python", "-c", "import salespulse, sinks; print(salespulse.__file__)"],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed.parent)
    assert run(installed, tmp_path, "--version") == f"salespulse {__version__}\n"
    # The defaults are the example files shipped in the wheel.
    assert "2 departments, 2 managers" in run(installed, tmp_path, "directory", "check")
    run(installed, tmp_path, "alerts", "check")
    # The development tools' commands reach the command line through the wheel's entry point
    # (the product does not import them: tests/unit/test_layers.py).
    commands = run(installed, tmp_path, "--help").split("positional arguments:")[0]
    assert {"stack", "generate", "demo"} <= set(commands.split("{")[1].split("}")[0].split(","))
    run(installed, tmp_path, "examples", "conf")
    written = (tmp_path / "conf" / "alerts.yaml").read_bytes()
    assert written == (REPO_ROOT / "salespulse" / "examples" / "alerts.example.yaml").read_bytes()


def test_the_installed_package_applies_the_schema_and_counts_a_call(
    installed: Path, stack: LocalStack, tmp_path: Path
) -> None:
    settings = isolated_settings(stack, tmp_path)
    (tmp_path / "directory.yaml").write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "Master.csv").write_text(CDR_LINE, encoding="utf-8")
    environment = {
        name: value
        for name, value in to_environment(settings).items()
        if name.startswith(STACK_SECTIONS)
    } | {
        "SALESPULSE_DIRECTORY_PATH": str(tmp_path / "directory.yaml"),
        "SALESPULSE_WORKER__APP_ID": settings.worker.app_id,
        "SALESPULSE_WORKER__WEB_PORT": str(settings.worker.web_port),
        # The session's Alertmanager is no place for this install's alerts.
        "SALESPULSE_ALERTS__ENABLED": "false",
    }

    run(installed, tmp_path, "schema", "apply", **environment)
    versions = query(settings, "SELECT count() FROM {db}.schema_migrations FINAL")
    # One version per NNNN_ prefix: the .v18 and .cluster files are variants of the same one.
    shipped = {path.name[:4] for path in (REPO_ROOT / "sinks" / "clickhouse" / "sql").glob("*.sql")}
    assert versions[0][0] == len(shipped)

    run(installed, tmp_path, "import", str(tmp_path / "Master.csv"), **environment)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [installed / "salespulse", "worker"],
        cwd=tmp_path,
        env=clean_environment(**environment),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Polled until the call is stored, or the worker has stopped (the assertions say why).
        eventually(lambda: worker.poll() is not None or stored_calls(settings), seconds=120)
        calls = stored_calls(settings)
    finally:
        status = stop_worker(worker)
        log.close()
    output = (tmp_path / "worker.log").read_text(errors="replace")
    assert calls == 1, output
    assert status in (0, -15), output
    # Its Faust data went under the working directory, not into the virtualenv.
    assert (tmp_path / ".state" / "worker").is_dir(), sorted(p.name for p in tmp_path.iterdir())
    assert not any(installed.parent.rglob(".state"))


def stored_calls(settings: Settings) -> int:
    rows = query(
        settings,
        "SELECT count() FROM {db}.events FINAL WHERE manager_id = 'ivanova' AND kind = 'call'",
    )
    return int(rows[0][0])
