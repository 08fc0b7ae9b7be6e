"""What may stand in an HTTP header line (RFC 9110), checked when a setting is read,
so that a bad header name or token is one line at start-up, not a failed post."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
NAME_RULE = "a header name: letters, digits and !#$%&'*+-.^_`|~, not empty"
VALUE_RULE = (
    "printable ASCII, not empty, no line break or control character, no blank at either end"
)


def name_ok(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def value_ok(value: str) -> bool:
    return _VALUE.fullmatch(value) is not None
