"""Settings that would silently leave something open or unset are refused at start, by name,
quoting no value: misspelt names (issue 21, finding 7) and empty secrets (finding 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from salespulse.secret_config import CREDENTIAL_URLS, secret_paths
from salespulse.sections import REPO_ROOT
from salespulse.setting_names import NOT_SETTINGS, KnownNames, section_model
from salespulse.settings import Settings, to_environment

VALUE = "value-S3CRET-never-shown"
SECTIONS = {
    name: model
    for name, field in Settings.model_fields.items()
    if (model := section_model(field.annotation)) is not None
}


def refusal(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> str:
    """The text of the error that refuses to load settings from ``variables``."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    text = str(refused.value) + refused.value.json()
    assert VALUE not in text
    return text


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_section_refuses_a_misspelt_key(
    section: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model: type[BaseModel] = SECTIONS[section]
    for field in model.model_fields:
        meant = f"SALESPULSE_{section.upper()}__{field.upper()}"
        text = refusal(monkeypatch, {meant + "X": VALUE})
        assert f"{meant}X: no such setting" in text
        assert f"did you mean {meant}?" in text
        monkeypatch.delenv(meant + "X")
        # The same in the YAML file or in code: the section itself refuses the key.
        with pytest.raises(ValidationError) as refused:
            model.model_validate({f"{field}x": VALUE})
        assert "extra_forbidden" in {error["type"] for error in refused.value.errors()}


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("SALESPULSE_RECEIVER__SHARED_TOKNE", "SALESPULSE_RECEIVER__SHARED_TOKEN"),
        ("SALESPULSE_RECEIVER__BASIC_PASWORD", "SALESPULSE_RECEIVER__BASIC_PASSWORD"),
        ("SALESPULSE_ALERTS__WEBHOOK_SECRT", "SALESPULSE_ALERTS__WEBHOOK_SECRET"),
        ("SALESPULSE_REPORTS__SMTP_PASWORD", "SALESPULSE_REPORTS__SMTP_PASSWORD"),
        ("SALESPULSE_BITRIX24__APPLICATION_TOKN", "SALESPULSE_BITRIX24__APPLICATION_TOKEN"),
        ("SALESPULSE_TAILER__STATEDIR", "SALESPULSE_TAILER__STATE_DIR"),
        ("SALESPULSE_RECIEVER__SHARED_TOKEN", "SALESPULSE_RECEIVER__SHARED_TOKEN"),
        ("SALESPULSE_RECIEVER__X", "SALESPULSE_RECEIVER"),
        ("SALESPULSE_LOG_LEVLE", "SALESPULSE_LOG_LEVEL"),
        ("salespulse_kafka__bootstrap_server", "SALESPULSE_KAFKA__BOOTSTRAP_SERVERS"),
        ("SALESPULSE_FOO", None),
    ],
)
def test_a_variable_that_names_no_setting_is_refused_by_name(
    variable: str, meant: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = refusal(monkeypatch, {variable: VALUE})
    assert f"{variable.upper()}: no such setting" in text
    if meant is not None:
        assert f"did you mean {meant}?" in text
    else:
        assert "did you mean" not in text


@pytest.mark.parametrize(
    "misspelt",
    ["SALESPULSE_CLIKHOUSE__PASSWORD", "SALESPULSE_CLICKHOUSE__PASWORD", "SALESPULSE_LOG_LEVLE"],
)
def test_a_misspelt_file_in_the_secrets_folder_is_refused_by_name(
    misspelt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mounted secret whose key was misspelt: ignored, ClickHouse would be reached without
    # the password it holds.
    (tmp_path / misspelt).write_text(VALUE)
    (tmp_path / "..data").mkdir()  # what a Kubernetes secret mount also holds: not ours
    (tmp_path / "README").write_text("not a setting\n")
    text = refusal(monkeypatch, {"SALESPULSE_SECRETS_DIR": str(tmp_path)})
    assert f"{misspelt}: no such setting" in text
    assert "did you mean SALESPULSE_" in text


def test_variables_that_are_not_settings_but_allowed_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.yaml").write_text("{}\n")
    (tmp_path / "password").write_text("from-a-file\n")
    allowed = dict.fromkeys(NOT_SETTINGS, "1") | {
        "SALESPULSE_CONFIG_FILE": str(tmp_path / "config.yaml"),
        "SALESPULSE_SECRETS_DIR": str(tmp_path),
        "SALESPULSE_CLICKHOUSE__PASSWORD_FILE": str(tmp_path / "password"),
        "SALESPULSE_COUNTING__DEPARTMENT_CONVERSATION_MIN_SECONDS__SUPPORT": "60",
    }
    for name, value in allowed.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.counting.department_conversation_min_seconds == {"support": 60}
    assert settings.clickhouse.password.get_secret_value() == "from-a-file"


def test_every_variable_the_project_sets_outside_tests_is_known() -> None:
    """dev.sh, the deployment files and the README use only settings and allowed names: a new
    variable of a script must join NOT_SETTINGS, or the service refuses to start beside it."""
    known = KnownNames.of(Settings)
    files = [REPO_ROOT / "dev.sh", REPO_ROOT / "README.md", *(REPO_ROOT / "deploy").rglob("*")]
    # A name followed by "_" or "*" is a family (SALESPULSE_GRAFANA_CLICKHOUSE_*), not a name.
    used = {
        name
        for path in files
        if path.is_file()
        for name in re.findall(r"SALESPULSE_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", path.read_text())
    }
    assert used, "no variable found: the scan is broken"
    unknown = [
        name
        for name in sorted(used)
        if name not in NOT_SETTINGS and not name.endswith("_FILE") and not known.knows(name)
    ]
    assert unknown == []


def test_the_allowed_variables_are_documented() -> None:
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert [name for name in NOT_SETTINGS if f"`{name}`" not in documented] == []


# -- empty secrets (finding 2) ---------------------------------------------------------------

# The least each optional section needs to load, so that a blank secret is the only problem.
COMPLETE = {
    "SALESPULSE_RECEIVER__BASIC_USER": "freeswitch",
    "SALESPULSE_RECEIVER__BASIC_PASSWORD": "basic-password",
    "SALESPULSE_AMI__USERNAME": "salespulse",
    "SALESPULSE_AMI__SECRET": "ami-secret",
    "SALESPULSE_BITRIX24__WEBHOOK_URL": "https://portal.example.com/rest/1/abcdef123/",
    "SALESPULSE_BITRIX24__APPLICATION_TOKEN": "b24-token",
    "SALESPULSE_CDR_TABLE__USER": "cdr-reader",
    "SALESPULSE_CDR_TABLE__PASSWORD": "cdr-password",
}
CREDENTIALS = sorted(
    variable
    for variable, path in secret_paths(Settings).items()
    if variable not in CREDENTIAL_URLS  # plain strings, empty meaning "not used"
)
BLANKS = ["", " ", "\t\n"]


def test_the_credentials_are_all_secret_strings() -> None:
    assert len(CREDENTIALS) == 12
    for variable in CREDENTIALS:
        section, name = secret_paths(Settings)[variable]
        model = SECTIONS[section]
        assert "SecretStr" in str(model.model_fields[name].annotation), variable


def blank_refusal(
    monkeypatch: pytest.MonkeyPatch, variable: str, variables: dict[str, str]
) -> None:
    # The secret comes from ``variables`` alone (which may name its file, folder or YAML).
    others = {name: value for name, value in COMPLETE.items() if name != variable}
    for name, value in (others | variables).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    errors = refused.value.errors()
    assert [error["type"] for error in errors] == ["blank_secret"], errors
    assert str(refused.value).count(f"{variable}: empty or only white space") == 1
    assert "ami-secret" not in str(refused.value)


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("variable", CREDENTIALS)
def test_an_empty_secret_in_the_environment_is_refused(
    variable: str, blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blank_refusal(monkeypatch, variable, {variable: blank})


@pytest.mark.parametrize("variable", CREDENTIALS)
def test_an_empty_secret_file_is_refused(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``SALESPULSE_…=$(cat missing-file)`` or a file left empty give."""
    (tmp_path / "empty").write_text("\n")
    blank_refusal(monkeypatch, variable, {variable + "_FILE": str(tmp_path / "empty")})


@pytest.mark.parametrize("variable", CREDENTIALS)
def test_an_empty_secret_in_the_secrets_folder_or_the_config_file_is_refused(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / variable).write_text("")
    blank_refusal(monkeypatch, variable, {"SALESPULSE_SECRETS_DIR": str(tmp_path)})
    (tmp_path / variable).unlink()
    section, name = secret_paths(Settings)[variable]
    (tmp_path / "config.yaml").write_text(f"{section}: {{{name}: '  '}}\n")
    blank_refusal(monkeypatch, variable, {"SALESPULSE_CONFIG_FILE": str(tmp_path / "config.yaml")})


def test_the_default_clickhouse_password_is_no_password_and_is_not_passed_on() -> None:
    settings = Settings()
    assert settings.clickhouse.password.get_secret_value() == ""
    # A worker started with to_environment(settings) must load them again.
    assert "SALESPULSE_CLICKHOUSE__PASSWORD" not in to_environment(settings)


def test_empty_alert_urls_still_mean_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESPULSE_ALERTS__WEBHOOK_URL", "")
    monkeypatch.setenv("SALESPULSE_ALERTS__ALERTMANAGER_URL", "")
    assert Settings().alerts.webhook_url == ""
