"""The only package that imports confluent_kafka: a thin consumer, a transactional
producer, topic administration and an offset reader, in the service's own types.

Clients are built lazily by their owners; constructing a config makes no network call.
"""

from .admin import Admin, TopicSpec
from .common import TP, Headers, Message, OutRecord, Stuck, TransactionAborted, bounded
from .connect import wait_for_brokers
from .consumer import Consumer
from .follower import Follower
from .producer import Producer, TransactionalProducer
from .reader import Reader

__all__ = [
    "TP",
    "Admin",
    "Consumer",
    "Follower",
    "Headers",
    "Message",
    "OutRecord",
    "Producer",
    "Reader",
    "Stuck",
    "TopicSpec",
    "TransactionAborted",
    "TransactionalProducer",
    "bounded",
    "wait_for_brokers",
]
