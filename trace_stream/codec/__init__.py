"""Bytes in and out: the only package that imports fastavro.

    avro      the schemas in `schemas/`, parsed once; plain Avro records <-> dicts/models
    registry  trade.closed in the Schema Registry wire format
    wire      what travels on the internal topics: record builders, header names
              and their parsers

`from trace_stream import codec` gives the Avro functions directly.
"""

from trace_stream.codec.avro import (
    SCHEMA_DIR_ENV,
    check_schemas,
    decode,
    decode_dead_letter,
    decode_delivery,
    decode_trade_closed,
    encode,
    encode_dead_letter,
    encode_delivery,
    schema,
    schema_dir,
)

__all__ = [
    "SCHEMA_DIR_ENV",
    "check_schemas",
    "decode",
    "decode_dead_letter",
    "decode_delivery",
    "decode_trade_closed",
    "encode",
    "encode_dead_letter",
    "encode_delivery",
    "schema",
    "schema_dir",
]
