"""User errors worded as one line naming what to fix (issue 11): the pure parts, and
librdkafka's own check of the rendered config (a throwaway client, no network)."""

from __future__ import annotations

import os
import time

import pytest

from trace_stream import cli
from trace_stream.core import config_errors
from trace_stream.core.errors import ConfigError
from trace_stream.kafka.connect import refusal
from trace_stream.settings import Settings, load

_OURS = ("TRACE_", "KAFKA_", "WEBHOOK_", "SCHEMA_", "ALERT_", "LOG_", "METRICS_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith(_OURS)]:
        monkeypatch.delenv(name)


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        cli._check_kafka_config(load(Settings))
    return str(caught.value)


def test_malformed_json_names_the_variable_and_quotes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_EXTRA_CONFIG", '{"sasl.password": canary-secret')
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    text = str(caught.value)
    assert text.startswith("invalid configuration: KAFKA_EXTRA_CONFIG: not valid JSON")
    assert "canary" not in text and "\n" not in text


def test_extra_config_takes_numbers_and_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KAFKA_EXTRA_CONFIG", '{"log_level": 3, "enable.ssl.certificate.verification": false}'
    )
    extra = load(Settings).kafka_extra_config
    assert extra == {"log_level": "3", "enable.ssl.certificate.verification": "false"}


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("KAFKA_EXTRA_CONFIG", '{"a": {"b": 1}}'),
        ("KAFKA_EXTRA_CONFIG", "[1, 2]"),
        ("LOG_LEVEL", "loud"),
        ("TRACE_TOPIC_PREFIX", "my topics"),
        ("TRACE_INPUT_TOPIC", ""),
        ("ALERT_WEBHOOK_URL", "hooks.example/canary-token"),
        ("SCHEMA_REGISTRY_URL", "registry:8081"),
        ("KAFKA_SESSION_TIMEOUT_MS", "99999999"),
    ],
)
def test_more_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    text = str(caught.value)
    assert f": {var}" in text and "canary" not in text and "Value error" not in text


def test_unknown_librdkafka_key_blames_the_extra_config(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _error(monkeypatch, KAFKA_EXTRA_CONFIG='{"no.such.key": "1"}')
    assert text == (
        "invalid configuration: KAFKA_EXTRA_CONFIG: librdkafka refused it: "
        'No such configuration property: "no.such.key"'
    )


def test_a_consumer_only_refusal_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _error(monkeypatch, KAFKA_EXTRA_CONFIG='{"group.protocol": "consumer"}')
    assert "KAFKA_EXTRA_CONFIG" in text and "session.timeout.ms" in text


def test_sasl_without_a_mechanism_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _error(monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_PASSWORD="canary-pw")
    assert text.startswith(
        "invalid configuration: KAFKA_SASL_MECHANISM: required with KAFKA_SECURITY_PROTOCOL"
    )
    assert "canary" not in text


def test_sasl_without_credentials_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _error(monkeypatch, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="PLAIN")
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in text


def test_sasl_goes_through_its_own_settings_not_the_extra_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once accepted through KAFKA_EXTRA_CONFIG, now refused: the password belongs in
    KAFKA_SASL_PASSWORD, a secret setting, and one place decides each key."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv(
        "KAFKA_EXTRA_CONFIG",
        '{"sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "canary-pw"}',
    )
    text = _error(monkeypatch)
    assert "sasl.mechanism is set by the service: set KAFKA_SASL_MECHANISM instead" in text
    assert "canary" not in text
    monkeypatch.delenv("KAFKA_EXTRA_CONFIG")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "p")
    cli._check_kafka_config(load(Settings))


def test_secret_values_are_masked_in_refusals() -> None:
    s = Settings(
        kafka_sasl_password="canary-pw",
        kafka_extra_config={"ssl.key.password": "p"},
    )
    refusal = 'Invalid value "canary-pw" for "x": p of provider'
    error = config_errors.kafka_refused(
        refusal, s.kafka_config(), s.kafka_security_protocol, from_extra=True
    )
    assert str(error) == (
        "invalid configuration: KAFKA_EXTRA_CONFIG: librdkafka refused it: "
        'Invalid value "***" for "x": *** of provider'
    )


def test_refusal_is_quick_and_contacts_nothing() -> None:
    started = time.monotonic()
    config = {"bootstrap.servers": "192.0.2.1:9092", "security.protocol": "PLAINTEXT"}
    assert refusal(config, consumer=True) is None
    assert refusal(config, consumer=False) is None
    assert refusal({**config, "acks": "1", "enable.idempotence": "true"}, consumer=False)
    assert refusal({**config, "nope": "1"}, consumer=True) == (
        'No such configuration property: "nope"'
    )
    assert time.monotonic() - started < 2


def test_run_and_topics_actions_have_their_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in (
        (["run", "--help"], "Run the service"),
        (["topics", "ensure", "--help"], "Create the delay, retry and dead-letter topics"),
        (["topics", "describe", "--help"], "partition count and retention.ms"),
    ):
        with pytest.raises(SystemExit) as done:
            cli.parser().parse_args(argv)
        assert done.value.code == 0
        assert words in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["topics"], "trace-stream topics: the following arguments are required"),
        (["topics", "create"], "trace-stream topics: argument {ensure,describe}: invalid choice"),
        (["check-config", "--timeout", "-1"], "'-1' is not a number of seconds above 0"),
        (["check-config", "--timeout", "nan"], "'nan' is not a number of seconds above 0"),
        (["replay", "--from", "yesterday"], "'yesterday' is not an ISO-8601 time"),
        (["nope"], "trace-stream: argument command: invalid choice"),
    ],
)
def test_bad_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.parser().parse_args(argv)
    assert done.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert words in line and line.endswith("--help)")
