"""The only package that imports confluent_kafka: a thin consumer, a transactional
producer, topic administration and an offset reader, in the service's own types
(`core.messages`, `core.topics`).

Clients are built lazily by their owners; constructing a config makes no network call.
"""

from trace_stream.kafka.admin import Admin
from trace_stream.kafka.common import Stuck, TransactionAborted, bounded, librdkafka_version
from trace_stream.kafka.connect import wait_for_brokers
from trace_stream.kafka.consumer import Consumer
from trace_stream.kafka.follower import Follower
from trace_stream.kafka.producer import Producer, TransactionalProducer
from trace_stream.kafka.reader import Reader

__all__ = [
    "Admin",
    "Consumer",
    "Follower",
    "Producer",
    "Reader",
    "Stuck",
    "TransactionAborted",
    "TransactionalProducer",
    "bounded",
    "librdkafka_version",
    "wait_for_brokers",
]
