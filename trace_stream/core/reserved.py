"""The librdkafka keys this service sets itself, and why KAFKA_EXTRA_CONFIG may not.

Exactly-once rests on some of them (offsets only through transactions, committed
records only, a transactional id per replica); others have a setting of their own,
which a passthrough key would silently contradict.
"""

from __future__ import annotations

RESERVED: dict[str, str] = {
    "bootstrap.servers": "set KAFKA_BOOTSTRAP_SERVERS instead",
    "metadata.broker.list": "set KAFKA_BOOTSTRAP_SERVERS instead",
    "security.protocol": "set KAFKA_SECURITY_PROTOCOL instead",
    "sasl.mechanism": "set KAFKA_SASL_MECHANISM instead",
    "sasl.mechanisms": "set KAFKA_SASL_MECHANISM instead",
    "sasl.username": "set KAFKA_SASL_USERNAME instead",
    "sasl.password": "set KAFKA_SASL_PASSWORD instead",
    "client.id": "derived from TRACE_INSTANCE_ID",
    "group.id": "each stage has its own group, named from TRACE_GROUP_ID",
    "transactional.id": "derived per stage and replica from TRACE_INSTANCE_ID; "
    "exactly-once depends on it",
    "enable.idempotence": "the transactional producers need it on",
    "enable.auto.commit": "offsets are committed only in the transaction of the work "
    "they stand for",
    "enable.auto.offset.store": "offsets are committed only in the transaction of the "
    "work they stand for",
    "isolation.level": "the stages read committed records only (read_committed)",
    "enable.partition.eof": "the loops do not expect end-of-partition events",
    "auto.offset.reset": "set TRACE_INPUT_OFFSET_RESET; internal topics are always read "
    "from the earliest offset",
    "session.timeout.ms": "set KAFKA_SESSION_TIMEOUT_MS instead",
    "heartbeat.interval.ms": "derived from KAFKA_SESSION_TIMEOUT_MS",
    "fetch.wait.max.ms": "the deliverers and the settings follower set it so that a "
    "delivery falling due is fetched at once",
    "linger.ms": "the transactional producers set it (5 ms)",
}


def refused(keys: list[str]) -> list[str]:
    """`key: why` for each reserved key among `keys` (compared as librdkafka does,
    without surrounding blanks)."""
    return [
        f"{key.strip()} is set by the service: {RESERVED[key.strip()]}"
        for key in keys
        if key.strip() in RESERVED
    ]


def passthrough(value: object) -> object:
    """KAFKA_EXTRA_CONFIG as librdkafka takes it: every value as text (JSON numbers and
    booleans are fine too, {"log_level": 3}); a nested object or list, or a reserved
    key, is a ValueError naming the key. Anything but a mapping is left to pydantic."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        elif not isinstance(item, str):
            raise ValueError(f"{key}: a librdkafka value is a string, number or boolean")
        out[key] = item
    problems = refused(list(out))
    if problems:
        raise ValueError("; ".join(problems))
    return out
