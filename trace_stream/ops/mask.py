"""Settings as `check-config` prints them: secrets masked, URLs cut to their site.

Masked: every SecretStr, and any value whose name says it is secret (password,
secret, token, credential, private key, API key, PEM contents, OAuth config). URLs
show only scheme://host:port, since paths and queries can carry tokens (a Slack
webhook URL is a secret in itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from trace_stream.core.config_errors import SECRET_NAME

MASK = "**********"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def shown(name: str, value: object) -> str:
    """The printable form of one setting."""
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr) or SECRET_NAME.search(name):
        return MASK
    if isinstance(value, Mapping):
        return json.dumps(_masked(value))
    text = str(value)
    return site(text) if _URL.match(text) else text


def _masked(value: Mapping[object, object]) -> dict[str, object]:
    """A mapping shown key by key, nested ones as objects, unset keys left out."""
    return {
        str(k): _masked(v) if isinstance(v, Mapping) else shown(str(k), v)
        for k, v in value.items()
        if v is not None
    }


def site(url: str) -> str:
    """`scheme://host:port`, plus `/...` when the URL had a path or query (not shown)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    rest = "/..." if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{rest}"


def env_lines(model: BaseSettings) -> list[tuple[str, str]]:
    """(environment variable, printable value) for every field of a settings model,
    each value in the form the environment gives it (its type's serializer: 5m for a
    duration, not 0:05:00)."""
    prefix = str(model.model_config.get("env_prefix", ""))
    values = model.model_dump()
    return [((prefix + name).upper(), shown(name, values[name])) for name in values]


def config_lines(config: Mapping[str, object]) -> list[tuple[str, str]]:
    """(key, printable value) for a librdkafka config dict."""
    return [(key, shown(key, value)) for key, value in sorted(config.items())]
