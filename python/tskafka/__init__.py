"""tskafka: tabular time series between Python and Kafka.

Frames in (polars, pyarrow, pandas, anything with ``__arrow_c_stream__``),
frames out, encoded and decoded natively with the GIL released, and an
embedded broker so that none of it needs a Kafka install.
"""

from __future__ import annotations

from . import _tskafka
from ._config import Config, ConfigLike, load_config
from ._csv import iter_csv, read_csv
from ._replay import Replay, ReplayProgress, replay
from ._tskafka import LocalBroker, SendReport
from .admin import Admin
from .aggregate import RunningAggregate
from .consumer import BackgroundConsumer, BackgroundStatus, Consumer
from .exceptions import (
    BrokerError,
    ClosedError,
    ConfigError,
    ConsumeError,
    DecodeError,
    KafkaError,
    ProduceError,
    SchemaError,
    TimeoutError,
    TsKafkaError,
)
from .producer import Producer
from .scan import ScanStats, TopicSnapshot, read_topic, scan_topic

__version__: str = _tskafka.__version__

__all__ = [
    "Admin",
    "BackgroundConsumer",
    "BackgroundStatus",
    "BrokerError",
    "ClosedError",
    "Config",
    "ConfigError",
    "ConfigLike",
    "ConsumeError",
    "Consumer",
    "DecodeError",
    "KafkaError",
    "LocalBroker",
    "ProduceError",
    "Producer",
    "Replay",
    "ReplayProgress",
    "RunningAggregate",
    "ScanStats",
    "SchemaError",
    "SendReport",
    "TimeoutError",
    "TopicSnapshot",
    "TsKafkaError",
    "iter_csv",
    "load_config",
    "read_csv",
    "read_topic",
    "replay",
    "scan_topic",
]
