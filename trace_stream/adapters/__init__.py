"""Adapter registry: adapters are found by name through the `trace_stream.adapters`
entry point group, so the core never imports a concrete adapter and a third-party
package adds one by declaring an entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from importlib.metadata import entry_points

from trace_stream.adapters.base import Adapter, AdapterContext, AdapterFactory, BatchAdapter
from trace_stream.core.errors import ConfigError

GROUP = "trace_stream.adapters"


def available() -> dict[str, AdapterFactory]:
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def build(
    names: Iterable[str],
    context_for: Callable[[str], AdapterContext],
    limited: Collection[str] = (),
) -> dict[str, Adapter | BatchAdapter]:
    """Instantiate the named adapters; an unknown name is a ConfigError listing the known
    ones. `limited`: the adapters given a rate limit (TRACE_RATE_LIMITS); a batch adapter
    among them is a ConfigError: it writes files, there is no third party's API to spare,
    and its posts are batches, not requests."""
    factories = available()
    adapters: dict[str, Adapter | BatchAdapter] = {}
    for name in names:
        if name not in factories:
            known = ", ".join(sorted(factories)) or "none"
            raise ConfigError(
                f"TRACE_ENABLED_ADAPTERS: unknown adapter {name!r} (available: {known})"
            )
        adapters[name] = factories[name](context_for(name))
        if name in limited and isinstance(adapters[name], BatchAdapter):
            raise ConfigError(
                f"invalid configuration: TRACE_RATE_LIMITS[{name}]: {name} is a batch "
                "adapter (files): it takes no rate limit"
            )
    return adapters
