"""Reachability of an adapter's endpoints, without posting anything.

An adapter that has an `async check()` method (returning an Outcome) is asked
directly. Otherwise each URL setting of the adapter's own settings models (found in
the module of its registered factory) gets a TCP connect to its host and port.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from trace_stream import adapters
from trace_stream.adapters.base import Adapter, BatchAdapter, Permanent, Retriable
from trace_stream.core.errors import ConfigError
from trace_stream.ops.mask import site
from trace_stream.settings import load

Status = Literal["ok", "warn", "FAIL"]
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Result:
    status: Status
    name: str
    message: str


def settings_of(adapter_name: str) -> list[BaseSettings]:
    """The settings models defined in the module of the adapter's factory, loaded from
    the environment; a model that does not load (one the adapter does not use) is left
    out, since `adapters.build` has already validated what the adapter needs."""
    factory = adapters.available()[adapter_name]
    module = sys.modules.get(getattr(factory, "__module__", ""))
    members = vars(module).values() if module is not None else ()
    models = [
        v
        for v in members
        if isinstance(v, type)
        and issubclass(v, BaseSettings)
        and v.__module__ == factory.__module__
    ]
    loaded = []
    for model in models:
        try:
            loaded.append(load(model))
        except ConfigError:
            continue
    return loaded


def endpoints(model: BaseSettings) -> list[tuple[str, str]]:
    """(environment variable, URL) for each http(s) URL the model holds."""
    prefix = str(model.model_config.get("env_prefix", ""))
    found = []
    for name in type(model).model_fields:
        value = str(getattr(model, name) or "")
        if value.startswith(("http://", "https://")):
            found.append(((prefix + name).upper(), value))
    return found


async def check(
    name: str, adapter: Adapter | BatchAdapter, models: list[BaseSettings], timeout: float
) -> list[Result]:
    """The adapter's own `check()` if it has one, else a TCP connect per URL setting."""
    custom: Callable[[], Awaitable[object]] | None = getattr(adapter, "check", None)
    if callable(custom):
        try:
            outcome = await asyncio.wait_for(custom(), timeout)
        except Exception as exc:
            return [Result("FAIL", name, f"check failed ({type(exc).__name__})")]
        if isinstance(outcome, Retriable | Permanent):
            return [Result("FAIL", name, f"check failed: {outcome.reason}: {outcome.detail}")]
        return [Result("ok", name, "check passed")]
    urls = [pair for model in models for pair in endpoints(model)]
    if not urls:
        return [Result("ok", name, "no endpoint setting to probe")]
    return [await connect(name, env, url, timeout) for env, url in urls]


async def connect(name: str, env: str, url: str, timeout: float) -> Result:
    """A TCP connect to the URL's host and port within `timeout` seconds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        why = "host name not resolved" if isinstance(exc, socket.gaierror) else type(exc).__name__
        return Result(
            "FAIL",
            name,
            f"{env}: cannot connect to {site(url)} ({why}); "
            f"check {env} and that the endpoint is up",
        )
    writer.close()
    await writer.wait_closed()
    return Result("ok", name, f"{env}: {site(url)} accepts connections")
