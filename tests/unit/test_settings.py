from __future__ import annotations

from datetime import timedelta

import pytest

from trace_stream.core.durations import format_duration, parse_duration
from trace_stream.core.errors import ConfigError
from trace_stream.core.topics import layout
from trace_stream.ops.mask import env_lines
from trace_stream.settings import DEFAULT_RETRY_SCHEDULE, Settings, load


def test_defaults_follow_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(Settings)
    assert s.delay == timedelta(minutes=5)
    assert s.trace_retry_max_attempts == 5
    assert [format_duration(t) for t in s.retry_tiers] == ["5s", "30s", "5m", "30m", "1h"]
    t = layout(s)
    assert t.retries == (
        "trace.retry.5s",
        "trace.retry.30s",
        "trace.retry.5m",
        "trace.retry.30m",
        "trace.retry.1h",
    )
    assert (t.delay, t.dead_letter) == ("trace.delay", "trace.dlq")


def test_backoff_base_scales_the_default_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_RETRY_BACKOFF_BASE", "1")
    tiers = [format_duration(t) for t in load(Settings).retry_tiers]
    assert tiers == ["1s", "6s", "1m", "6m", "12m"]


def test_explicit_schedule_and_fractional_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_RETRY_SCHEDULE", "250ms,1s,1m30s")
    monkeypatch.setenv("TRACE_DELAY_MINUTES", "0.05")
    s = load(Settings)
    assert s.retry_tiers == (
        timedelta(milliseconds=250),
        timedelta(seconds=1),
        timedelta(seconds=90),
    )
    assert s.delay == timedelta(seconds=3)
    assert layout(s).retries[-1] == "trace.retry.1m30s"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TRACE_DELAY_MINUTES", "soon"),
        ("TRACE_DELAY_MINUTES", "-1"),
        ("TRACE_RETRY_SCHEDULE", "5s,often"),
        ("TRACE_RETRY_MAX_ATTEMPTS", "-2"),
        ("KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON"),
        ("TRACE_ENABLED_ADAPTERS", " , "),
        ("TRACE_RETRY_JITTER", "1.5"),
        ("TRACE_RETRY_JITTER", "-0.1"),
        ("TRACE_LOOKAHEAD_MEMORY_MIB", "-5"),
        ("TRACE_MAX_BUFFERED", "0"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load(Settings)
    assert var in str(info.value)
    assert value not in str(info.value) or value in ("-1", "-2")  # inputs are not echoed


def test_secrets_are_masked_and_rendered_only_into_the_librdkafka_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2-canary")
    monkeypatch.setenv("KAFKA_EXTRA_CONFIG", '{"socket.keepalive.enable": "true"}')
    s = load(Settings)
    assert "hunter2-canary" not in repr(s)
    assert "hunter2-canary" not in str(s.model_dump())
    config = s.kafka_config()
    assert config["sasl.password"] == "hunter2-canary"
    assert config["socket.keepalive.enable"] == "true"


def test_duration_round_trip() -> None:
    for text in ("5s", "30m", "1h", "250ms", "1h30m", "1m30s"):
        assert format_duration(parse_duration(text)) == text


def test_dead_letter_retention_can_be_set_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    from trace_stream.core.topics import specs

    monkeypatch.setenv("TRACE_DEAD_LETTER_RETENTION_DAYS", "30")
    retention = {s.name: s.config["retention.ms"] for s in specs(load(Settings))}
    assert retention.pop("trace.dlq") == str(30 * 86_400_000)
    assert set(retention.values()) == {str(7 * 86_400_000)}


def test_signal_settings_topic_defaults_and_may_be_turned_off(monkeypatch) -> None:
    monkeypatch.delenv("TRACE_SIGNAL_SETTINGS_TOPIC", raising=False)
    assert load(Settings).trace_signal_settings_topic == "signal.tracing"
    monkeypatch.setenv("TRACE_SIGNAL_SETTINGS_TOPIC", "")
    assert load(Settings).trace_signal_settings_topic == ""
    monkeypatch.setenv("TRACE_SIGNAL_SETTINGS_TOPIC", "bad topic!")
    with pytest.raises(ConfigError, match=r"^invalid configuration: TRACE_SIGNAL_SETTINGS_TOPIC: "):
        load(Settings)


def test_consumers_read_ahead_2_mib_and_fetch_4_mib_unless_told_otherwise() -> None:
    config = Settings().consumer_config("g", "earliest")
    assert config["queued.max.messages.kbytes"] == 2048
    assert config["fetch.max.bytes"] == 2**20
    told = Settings(kafka_extra_config={"queued.max.messages.kbytes": "65536"})
    assert told.consumer_config("g", "earliest")["queued.max.messages.kbytes"] == "65536"


def test_durations_are_typed_and_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_MAX_CLOCK_SKEW", "1h30m")
    monkeypatch.setenv("TRACE_RETRY_SCHEDULE", "250ms,5s,30s,5m,30m,1h")
    monkeypatch.setenv("TRACE_ENABLED_ADAPTERS", "webhook, file,webhook")
    s = load(Settings)
    assert s.trace_max_clock_skew == timedelta(hours=1, minutes=30)
    assert s.retry_tiers[:2] == (timedelta(milliseconds=250), timedelta(seconds=5))
    assert s.enabled_adapters == ("webhook", "file")
    for name in ("delay", "max_clock_skew", "retry_tiers", "enabled_adapters"):
        assert getattr(s, name) is getattr(s, name), f"{name} is built again on each access"
    monkeypatch.delenv("TRACE_RETRY_SCHEDULE")
    assert load(Settings).retry_tiers == DEFAULT_RETRY_SCHEDULE


def test_typed_values_print_and_round_trip_as_their_environment_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACE_MAX_CLOCK_SKEW", "250ms")
    monkeypatch.setenv("TRACE_RETRY_SCHEDULE", "5s,1m30s")
    monkeypatch.setenv("TRACE_ENABLED_ADAPTERS", "webhook,file")
    s = load(Settings)
    shown = dict(env_lines(s))
    assert shown["TRACE_MAX_CLOCK_SKEW"] == "250ms"  # not 0:00:00.250000
    assert shown["TRACE_RETRY_SCHEDULE"] == "5s,1m30s"
    assert shown["TRACE_ENABLED_ADAPTERS"] == "webhook,file"
    assert dict(env_lines(Settings(trace_retry_schedule=None)))["TRACE_RETRY_SCHEDULE"] == "(unset)"
    again = Settings(**{k: v for k, v in s.model_dump().items() if v is not None})
    assert (again.max_clock_skew, again.retry_tiers) == (s.max_clock_skew, s.retry_tiers)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TRACE_MAX_CLOCK_SKEW", "300"),
        ("TRACE_MAX_CLOCK_SKEW", "5 minutes"),
        ("TRACE_MAX_CLOCK_SKEW", ""),
        ("TRACE_RETRY_SCHEDULE", ""),
        ("TRACE_RETRY_SCHEDULE", "5s,,1m"),
        ("TRACE_RETRY_SCHEDULE", '["5s"]'),
    ],
)
def test_bad_durations_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load(Settings)
    text = str(info.value)
    assert text.startswith(f"invalid configuration: {var}: ") and "\n" not in text
    assert "is not a duration like 5s, 30m, 1h or 250ms" in text


def test_jitter_and_limits_are_off_or_modest_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(Settings)
    assert s.trace_retry_jitter == 0.15
    assert s.trace_rate_limits == {}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('{"webhook": {"per_second": 0}}', "TRACE_RATE_LIMITS[webhook][per_second]: "),
        ('{"webhook": {"per_day": -3}}', "TRACE_RATE_LIMITS[webhook][per_day]: "),
        ('{"webhook": {"burst": 10}}', "TRACE_RATE_LIMITS[webhook]: burst needs per_second"),
        ('{"webhook": {"per_sec": 10}}', "TRACE_RATE_LIMITS[webhook][per_sec]: Extra inputs"),
        ('{"webhok": {"per_second": 10}}', "TRACE_RATE_LIMITS: webhok: not in TRACE_ENABLED_"),
        ('{"webhook": 10}', "TRACE_RATE_LIMITS[webhook]: "),
        ("20/s", "TRACE_RATE_LIMITS: not valid JSON"),
    ],
)
def test_rate_limits_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    monkeypatch.setenv("TRACE_RATE_LIMITS", value)
    with pytest.raises(ConfigError) as info:
        load(Settings)
    assert said in str(info.value)
    assert "\n" not in str(info.value)


def test_rate_limits_per_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_ENABLED_ADAPTERS", "webhook,myfxbook")
    monkeypatch.setenv(
        "TRACE_RATE_LIMITS", '{"webhook": {"per_second": 20, "burst": 40, "per_day": 100000}}'
    )
    limits = load(Settings).trace_rate_limits
    assert set(limits) == {"webhook"}
    assert (limits["webhook"].per_second, limits["webhook"].burst) == (20, 40)
    assert limits["webhook"].per_day == 100_000


def test_rate_limits_print_as_an_object_of_the_limits_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_RATE_LIMITS", '{"webhook": {"per_second": 20, "per_day": 500}}')
    shown = dict(env_lines(load(Settings)))["TRACE_RATE_LIMITS"]
    assert shown == '{"webhook": {"per_second": "20.0", "per_day": "500"}}'


def test_the_lookahead_budget_is_for_the_process_shared_by_the_adapters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(Settings).lookahead_bytes == 48 * 2**20  # one adapter, the webhook
    monkeypatch.setenv("TRACE_LOOKAHEAD_MEMORY_MIB", "96")
    monkeypatch.setenv("TRACE_ENABLED_ADAPTERS", "webhook,file,myfxbook")
    assert load(Settings).lookahead_bytes == 32 * 2**20
    monkeypatch.setenv("TRACE_MAX_BUFFERED", "10000")  # an older configuration still loads
    assert load(Settings).trace_max_buffered == 10_000
