"""Configuration from the environment and a file; phone numbers never stored in clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from processors.privacy import PhoneProtector
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import load_directory
from salespulse.settings import ClickHouseSettings, Settings, StackSettings, environment_names
from salespulse.stack_settings import pointed_at_stack


def test_environment_overrides_file_and_nested_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "salespulse.yaml"
    config.write_text("kafka: {bootstrap_servers: 'file:9092'}\nclickhouse: {port: 9440}\n")
    monkeypatch.setenv("SALESPULSE_CONFIG_FILE", str(config))
    monkeypatch.setenv("SALESPULSE_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.clickhouse.port == 9440


def test_secrets_do_not_show_in_reprs_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PASSWORD", "hunter2-secret")
    settings = Settings()
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.model_dump())
    assert settings.clickhouse.password.get_secret_value() == "hunter2-secret"


@pytest.mark.parametrize("name", ["sales; DROP TABLE x", "1abc", "a.b", ""])
def test_database_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValidationError):
        ClickHouseSettings(database=name)


def test_unknown_pbx_time_zone_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESPULSE_PARSING__PBX_TIMEZONE", "Europe/Atlantis")
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings()


def test_example_directory_shipped_with_the_project_loads() -> None:
    directory = load_directory(Settings().directory_path)
    assert set(directory.managers) == {"ivanova", "petrov"}


def test_phone_numbers_are_hashed_with_a_key_stably_and_not_reversibly() -> None:
    phones = PhoneProtector(b"k1")
    token = phones.protect("+7 (916) 123-45-67")
    assert token is not None
    assert token.startswith("h:")
    assert "9161234567" not in token
    assert phones.protect("79161234567") == token  # the same customer, however it is written
    assert PhoneProtector(b"k2").protect("79161234567") != token


def test_without_a_key_phone_numbers_are_masked() -> None:
    assert PhoneProtector(None).protect("79161234567") == "*********67"


@pytest.mark.parametrize("value", ["101", "op-7", "c-88", "", None])
def test_extensions_and_ids_pass_through(value: str | None) -> None:
    assert PhoneProtector(b"k").protect(value) == value


def test_every_setting_is_documented() -> None:
    documented = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in environment_names() if f"`{name}`" not in documented]
    assert missing == []


def test_settings_pointed_at_the_stack_use_all_of_it(tmp_path: Path) -> None:
    # A configured Alertmanager is replaced too: demo and test alerts must never page anyone.
    mine = Settings(alerts=AlertsSettings(alertmanager_url="https://alertmanager.example.com"))
    stack = StackSettings(
        state_dir=tmp_path,
        kafka_port=29092,
        clickhouse_tcp_port=29000,
        clickhouse_http_port=28123,
        alertmanager_port=29093,
    )

    settings = pointed_at_stack(mine, stack)

    assert settings.kafka.bootstrap_servers == "127.0.0.1:29092"
    assert (settings.clickhouse.host, settings.clickhouse.port) == ("127.0.0.1", 29000)
    assert settings.alerts.alertmanager_url == "http://127.0.0.1:29093"
    assert settings.stack == stack
    assert mine.alerts.alertmanager_url == "https://alertmanager.example.com"
    assert StackSettings().alertmanager_url == "http://127.0.0.1:19093"


def test_a_remembered_number_is_protected_as_a_fresh_protector_would() -> None:
    phones = PhoneProtector(b"k1")
    numbers = [f"+7 (916) {n:03d}-45-67" for n in range(20_000)]  # more than it remembers
    first = [phones.protect(number) for number in numbers]
    again = [phones.protect(number) for number in reversed(numbers)]
    assert again == first[::-1]
    assert first == [PhoneProtector(b"k1").protect(number) for number in numbers]
    assert len(set(first)) == len(numbers)
    assert phones.protect("101") == "101"
    assert phones.protect(None) is None
