"""Which adapters an operations command may schedule for."""

from __future__ import annotations

from trace_stream import adapters
from trace_stream.core.errors import ConfigError
from trace_stream.settings import Settings


def targets(settings: Settings, only: str | None) -> frozenset[str]:
    """The adapters to schedule for; a ConfigError for an unknown or disabled one."""
    known = adapters.available()
    names = (only,) if only else settings.enabled_adapters
    where = "--adapter" if only else "TRACE_ENABLED_ADAPTERS"
    for name in names:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{where}: unknown adapter {name!r} (available: {listed})")
        if name not in settings.enabled_adapters:
            raise ConfigError(
                f"--adapter {name}: not enabled; add it to TRACE_ENABLED_ADAPTERS "
                f"(now {','.join(settings.enabled_adapters)})"
            )
    return frozenset(names)
