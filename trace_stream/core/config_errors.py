"""Configuration errors as one ConfigError line that names the variable to fix and
never quotes a secret: a setting that does not validate, a JSON value that does not
parse (`settings.load` words both), librdkafka refusing the rendered config."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from trace_stream.core.errors import ConfigError

SECRET_NAME = re.compile(
    r"pass|secret|token|credential|private|api[._-]?key|\.pem$|oauthbearer\.config", re.I
)
"""A setting whose name matches holds a secret: its value is never printed."""


def invalid(exc: ValidationError, prefix: str) -> ConfigError:
    """Each failed value as its variable and what it should be (never the value)."""
    lines = [
        f"{_variable(prefix, err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return ConfigError("invalid configuration: " + "; ".join(lines))


def unparsed(exc: SettingsError, prefix: str) -> ConfigError:
    """A complex value (a JSON object) that is not JSON."""
    found = re.search(r'field "(\w+)"', str(exc))
    name = (prefix + found.group(1)).upper() if found else "a setting"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        # The position only: the message quotes no part of the value.
        why = f"{cause.msg} at character {cause.pos}"
        text = f'not valid JSON ({why}); expected an object like {{"key": "value"}}'
    else:
        text = f"cannot be parsed ({type(cause).__name__ if cause else 'unknown error'})"
    return ConfigError(f"invalid configuration: {name}: {text}")


def _variable(prefix: str, loc: tuple[int | str, ...]) -> str:
    """The environment variable of an error's location, with a key inside it if any:
    `KAFKA_EXTRA_CONFIG[acks]`."""
    name = (prefix + str(loc[0])).upper() if loc else "settings"
    return name + "".join(f"[{part}]" for part in loc[1:])


def kafka_refused(
    refusal: str, config: Mapping[str, Any], protocol: str, *, from_extra: bool
) -> ConfigError:
    """librdkafka's `refusal` of the rendered `config` (`Settings.kafka_config`, with
    KAFKA_SECURITY_PROTOCOL `protocol`) naming what to fix: KAFKA_EXTRA_CONFIG when the
    config without it is accepted (`from_extra`), else the KAFKA_SECURITY_PROTOCOL /
    KAFKA_SASL_* settings. Values of secret settings are masked wherever librdkafka
    quoted them. (The check itself needs a client: `kafka.connect.refusal`.)"""
    detail = " ".join(refusal.split())
    for prefix in ("Failed to create consumer: ", "Failed to create producer: "):
        detail = detail.removeprefix(prefix)
    for key, value in config.items():
        if SECRET_NAME.search(key) and str(value):
            alone = rf"(?<![A-Za-z0-9]){re.escape(str(value))}(?![A-Za-z0-9])"
            detail = re.sub(alone, "***", detail)
    protocol = f"KAFKA_SECURITY_PROTOCOL={protocol}"
    if from_extra:
        where = "KAFKA_EXTRA_CONFIG"
    elif "SASL mechanism" in detail and not config.get("sasl.mechanism"):
        return ConfigError(
            f"invalid configuration: KAFKA_SASL_MECHANISM: required with {protocol}: "
            "set PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (librdkafka's "
            "default, GSSAPI, is not in this build)"
        )
    elif "sasl.username" in detail or "sasl.password" in detail:
        where = f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (with {protocol})"
    elif "SASL mechanism" in detail:
        where = f"KAFKA_SASL_MECHANISM (with {protocol})"
    else:
        where = f"{protocol} or the KAFKA_SASL_* settings"
    return ConfigError(f"invalid configuration: {where}: librdkafka refused it: {detail}")
