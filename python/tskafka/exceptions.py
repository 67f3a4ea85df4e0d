"""Every exception tskafka raises, rooted at :class:`TsKafkaError`.

The native core raises these by name, so this module is the one place the
tree is declared.
"""

from __future__ import annotations

import builtins


class TsKafkaError(Exception):
    """Base class of every tskafka error."""


class ConfigError(TsKafkaError, ValueError):
    """A client setting, argument or config file is wrong."""


class SchemaError(TsKafkaError, ValueError):
    """A frame's columns or dtypes do not fit what was asked (a missing
    key/timestamp column, a dtype the format cannot carry, ...)."""


class KafkaError(TsKafkaError):
    """An error reported by Kafka or librdkafka.

    ``code`` is librdkafka's error name (e.g. ``"UnknownTopicOrPartition"``),
    ``retriable`` says whether trying again may succeed, ``fatal`` that the
    client cannot be used any more.
    """

    def __init__(
        self, message: str, *, code: str = "Unknown", retriable: bool = False, fatal: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.fatal = fatal


class ProduceError(TsKafkaError):
    """Some rows were not delivered. ``rows_failed`` says how many;
    ``rows_delivered`` how many of the same call made it."""

    def __init__(self, message: str, *, rows_failed: int = 0, rows_delivered: int = 0) -> None:
        super().__init__(message)
        self.rows_failed = rows_failed
        self.rows_delivered = rows_delivered


class ConsumeError(TsKafkaError):
    """Reading from Kafka failed."""


class DecodeError(ConsumeError):
    """A message could not be decoded. The consumer has moved past it; call
    ``poll_frame`` again to go on, or read with ``on_error='skip'``."""

    def __init__(
        self,
        message: str,
        *,
        topic: str = "",
        partition: int = -1,
        offset: int = -1,
        payload: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.payload = payload


class ClosedError(TsKafkaError):
    """The client was closed; create a new one."""


class TimeoutError(TsKafkaError, builtins.TimeoutError):
    """A call did not finish within its timeout."""


class BrokerError(TsKafkaError):
    """The embedded broker could not start or serve."""


__all__ = [
    "BrokerError",
    "ClosedError",
    "ConfigError",
    "ConsumeError",
    "DecodeError",
    "KafkaError",
    "ProduceError",
    "SchemaError",
    "TimeoutError",
    "TsKafkaError",
]
