"""Configuration from the environment and a file; phone numbers never stored in clear."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from processors.parsers._common import redact
from processors.privacy import PhoneProtector
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import load_directory
from salespulse.secret_config import Redactor, secret_values
from salespulse.sections import ClickHouseSettings, StackSettings
from salespulse.settings import Settings, environment_names
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


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("utf-8", "utf-8"), ("UTF8", "utf-8"), ("cp1251", "cp1251"), ("windows-1251", "cp1251"),
     ("koi8-r", "koi8-r")],
)  # fmt: skip
def test_pbx_encoding_is_a_python_codec_by_its_python_name(
    monkeypatch: pytest.MonkeyPatch, given: str, canonical: str
) -> None:
    monkeypatch.setenv("SALESPULSE_PARSING__PBX_ENCODING", given)
    assert Settings().parsing.pbx_encoding == canonical


@pytest.mark.parametrize(
    ("given", "error"),
    [("cp-1251x", "not a text encoding Python knows"), ("base64", "not a text encoding"),
     ("utf-16", "not ASCII-compatible"), ("cp037", "not ASCII-compatible")],
)  # fmt: skip
def test_an_unknown_or_unusable_pbx_encoding_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str, error: str
) -> None:
    monkeypatch.setenv("SALESPULSE_PARSING__PBX_ENCODING", given)
    with pytest.raises(ValidationError, match=error):
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


def test_a_secret_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ch").write_text("from-a-file\n")  # as `echo secret > file` writes it
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PASSWORD_FILE", str(tmp_path / "ch"))
    monkeypatch.setenv("SALESPULSE_AMI__USERNAME", "salespulse")
    monkeypatch.setenv("SALESPULSE_AMI__SECRET_FILE", str(tmp_path / "ch"))
    settings = Settings()
    assert settings.clickhouse.password.get_secret_value() == "from-a-file"
    assert settings.ami is not None
    assert settings.ami.secret.get_secret_value() == "from-a-file"


def test_secrets_are_read_from_a_folder_of_files_named_after_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "SALESPULSE_PARSING__PHONE_HASH_KEY").write_text("k8s-mounted-key")
    (tmp_path / "SALESPULSE_KAFKA__SASL_PASSWORD").write_text("sasl-from-folder")
    monkeypatch.setenv("SALESPULSE_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("SALESPULSE_KAFKA__SASL_PASSWORD", "sasl-from-env")
    settings = Settings()
    assert settings.parsing.phone_hash_key == SecretStr("k8s-mounted-key")
    assert settings.kafka.sasl_password == SecretStr("sasl-from-env")  # the environment wins


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SALESPULSE_LOG_LEVEL_FILE": "{file}"}, "SALESPULSE_LOG_LEVEL is not a secret setting"),
        (
            {"SALESPULSE_CLICKHOUSE__PASWORD_FILE": "{file}"},
            "SALESPULSE_CLICKHOUSE__PASWORD is not a secret setting",
        ),
        (
            {
                "SALESPULSE_CLICKHOUSE__PASSWORD": "x",
                "SALESPULSE_CLICKHOUSE__PASSWORD_FILE": "{file}",
            },
            "are both set",
        ),
        (
            {"SALESPULSE_CLICKHOUSE__PASSWORD_FILE": "{file}.missing"},
            "SALESPULSE_CLICKHOUSE__PASSWORD_FILE: cannot read .*: No such file",
        ),
        ({"SALESPULSE_SECRETS_DIR": "{file}.folder"}, 'secret.folder" does not exist'),
    ],
)
def test_a_secret_file_that_cannot_be_used_is_refused_by_name(
    variables: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("file-content-never-shown")
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(file=tmp_path / "secret"))
    with pytest.raises(SettingsError, match=message) as refused:
        Settings()
    assert "file-content-never-shown" not in str(refused.value)


def test_a_validation_error_quotes_no_value_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESPULSE_AMI__SECRET", "ami-secret-value")  # the user is missing
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PASWORD", "misspelt-secret")
    monkeypatch.setenv("SALESPULSE_ALERTS__WEBHOOK_URL", "ftp://u:pw-in-url@host/?token=tk-123")
    with pytest.raises(ValidationError) as refused:
        Settings()
    text = str(refused.value) + refused.value.json()
    for secret in ("ami-secret-value", "misspelt-secret", "pw-in-url", "tk-123"):
        assert secret not in text
    for variable in ("AMI__USERNAME", "CLICKHOUSE__PASWORD", "ALERTS__WEBHOOK_URL"):
        assert f"SALESPULSE_{variable}: " in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("POST http://user:p4ss@hook.example/x", "POST http://***@hook.example/x"),
        ("GET https://h/x?a=1&token=abc123&b=2", "GET https://h/x?a=1&token=***&b=2"),
        ("url=https://h/?access_token=abc123#f", "url=https://h/?access_token=***#f"),
        (
            "https://portal.example/rest/1/4f9c2b7a1d/crm.lead.get",
            "https://portal.example/rest/1/***/crm.lead.get",
        ),
        ("Authorization: Bearer abcdef123", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ("HTTP Basic password of the receiver", "HTTP Basic password of the receiver"),
        ("the known pa55word-x and pa55word-xy", "the known *** and ***"),
        ("short abc stays", "short abc stays"),
    ],
)
def test_credentials_are_redacted_by_value_and_by_shape(text: str, shown: str) -> None:
    assert Redactor(["pa55word-x", "pa55word-xy", "abc"])(text) == shown


def test_log_records_are_redacted_with_their_tracebacks_and_kafka_payloads() -> None:
    redactor = Redactor(["s3cret-value"])
    try:
        raise RuntimeError("login with s3cret-value failed")
    except RuntimeError:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "user %s: %s", ("u", "s3cret-value"), sys.exc_info()
        )
    sent = logging.LogRecord(
        "aiokafka.producer.producer",
        logging.DEBUG,
        __file__,
        1,
        "Sending (key=%s value=%s) to %s",
        (b"k", b'"","79161234567"', "tp"),
        None,
    )
    redactor.record(failed)
    redactor.record(sent)
    assert failed.getMessage() == "user u: ***"
    assert failed.exc_text is not None
    assert "RuntimeError: login with *** failed" in failed.exc_text
    assert sent.getMessage() == "Sending (key=b'k' value=<16 bytes>) to tp"


def test_the_secret_values_of_settings_include_url_credentials_but_not_addresses() -> None:
    settings = Settings(
        clickhouse=ClickHouseSettings(password=SecretStr("ch-pass-1")),
        alerts=AlertsSettings(webhook_url="https://u:hook-pass@hooks.example/x?token=tok-42"),
    )
    found = secret_values(settings)
    assert {"ch-pass-1", "hook-pass", "tok-42"} <= set(found)
    assert "https://u:hook-pass@hooks.example/x?token=tok-42" not in found


@pytest.mark.parametrize("key", [b"k1", None])
@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("sip:+7 916 123-45-67@trunk", "sip:{}@trunk"),
        ("79161234567@c.us", "{}@c.us"),
        ("SIP/provider/79161234567,60", "SIP/provider/{},60"),
    ],
)
def test_a_number_inside_a_longer_value_is_protected_in_place(
    key: bytes | None, value: str, shape: str
) -> None:
    phones = PhoneProtector(key)
    assert phones.protect(value) == shape.format(phones.protect("79161234567"))


def test_digits_of_other_scripts_are_kept_and_break_nothing() -> None:
    # Arabic-Indic digits: not a number anyone dials, and once a crash of the whole batch.
    assert PhoneProtector(b"k").protect("٧٩١٦١٢٣٤٥٦٧") == "٧٩١٦١٢٣٤٥٦٧"


SEPARATED_NUMBERS = [
    ("+7\u00a0916\u00a0123-45-67", "79161234567"),  # non-breaking spaces, as editors put them
    ("+7\u2009916\u2009123\u200945\u200967", "79161234567"),  # thin spaces
    ("+7\u202f916\u202f123\u201145\u201167", "79161234567"),  # narrow no-break, no-break hyphen
    ("8 (916) 123.45.67", "89161234567"),
    ("+7 916 123 \u2013 45 \u2013 67", "79161234567"),  # en dashes between spaces
    ("7/916/123/45/67", "79161234567"),
    ("7\u200b916\u200b1234567", "79161234567"),  # zero-width spaces, invisible when pasted
]


@pytest.mark.parametrize("key", [b"k1", None])
@pytest.mark.parametrize(("written", "digits"), SEPARATED_NUMBERS)
def test_a_number_written_with_any_usual_separator_is_the_same_customer(
    key: bytes | None, written: str, digits: str
) -> None:
    phones = PhoneProtector(key)
    bare = phones.protect(digits)
    assert phones.protect(written) == bare
    text = f"client's office, {written}, ring twice"
    assert phones.protect(text) == f"client's office, {bare}, ring twice"


@pytest.mark.parametrize(("written", "digits"), SEPARATED_NUMBERS)
def test_a_dead_letter_detail_hides_a_number_written_with_any_usual_separator(
    written: str, digits: str
) -> None:
    assert redact(f"bad {written}") == "'bad <digits>'"
