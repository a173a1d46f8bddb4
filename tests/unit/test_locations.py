"""Shipped files are package data, and state stays out of the installed packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from salespulse import __version__, locations
from salespulse.cli import main
from salespulse.sections import REPO_ROOT
from salespulse.settings import Settings
from sinks.clickhouse.migrations import MIGRATIONS_DIR, discover


def test_defaults_name_the_shipped_examples_and_the_checkouts_state() -> None:
    settings = Settings()
    examples = REPO_ROOT / "salespulse" / "examples"
    assert settings.directory_path == examples / "directory.example.yaml"
    assert settings.alerts.rules_path == examples / "alerts.example.yaml"
    assert settings.alerts.calendar_path == examples / "calendar.example.yaml"
    assert settings.stack.state_dir == REPO_ROOT / ".state" / "stack"
    assert settings.tailer.state_dir == REPO_ROOT / ".state" / "tailer"


def test_outside_a_checkout_state_goes_under_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(locations, "_PACKAGES_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert locations.source_checkout() is None
    assert Settings().stack.state_dir == tmp_path / ".state" / "stack"


def test_a_foreign_pyproject_beside_the_packages_is_no_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    monkeypatch.setattr(locations, "_PACKAGES_ROOT", tmp_path)
    assert locations.source_checkout() is None


def test_the_migrations_are_found_as_package_data() -> None:
    names = sorted(entry.name for entry in MIGRATIONS_DIR.iterdir())
    assert {"0001_events.sql", "0001_events.cluster.sql"} <= set(names)
    assert [m.version for m in discover()] == list(range(1, len(discover()) + 1))


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"salespulse {__version__}\n"


def test_the_examples_are_written_out_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["examples", str(tmp_path / "conf")]) == 0
    shipped = REPO_ROOT / "salespulse" / "examples"
    for name in ("directory", "alerts", "calendar"):
        written = (tmp_path / "conf" / f"{name}.yaml").read_bytes()
        assert written == (shipped / f"{name}.example.yaml").read_bytes()
    capsys.readouterr()
    assert main(["examples", str(tmp_path / "conf")]) == 2
    assert "already has directory.yaml, alerts.yaml, calendar.yaml" in capsys.readouterr().err
