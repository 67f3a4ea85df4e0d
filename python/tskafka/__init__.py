"""tskafka: tabular time series between Python and Kafka.

Frames in (polars, pyarrow, pandas, anything with ``__arrow_c_stream__``),
frames out, encoded and decoded natively with the GIL released, and an
embedded broker so that none of it needs a Kafka install.
"""

from __future__ import annotations

import datetime as _dt
import threading as _threading
import weakref as _weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Self

from . import _tskafka
from ._csv import iter_csv, read_csv
from ._frames import Output, as_arrow_stream, check_output, convert, native_headers, native_key
from ._config import Config, ConfigLike, native
from ._tskafka import LocalBroker, SendReport
from .aggregate import RunningAggregate
from .background import BackgroundConsumer, BackgroundStatus, _stop_all
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

__version__: str = _tskafka.__version__

def load_config(config: ConfigLike, section: str | None = None) -> dict[str, str] | None:
    """librdkafka properties as a dict: from a Config or dict, or from a
    Confluent-style ``config.ini`` (its ``[default]`` section overlaid with
    ``section``). See :class:`Config`."""
    return native(config, section)


class _Client:
    """What Producer and Consumer share: a native client, closed once."""

    _native: Any

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._native)


class Producer(_Client):
    """Sends whole frames to Kafka.

    ``config`` takes any librdkafka property (``compression.type``,
    ``linger.ms``, ``security.protocol``, ...) unchanged, as a
    :class:`Config`, a dict or a ``config.ini`` path (its ``[producer]``
    section applies). Idempotence is on unless turned off.
    """

    def __init__(self, bootstrap_servers: str | None = None, config: ConfigLike = None) -> None:
        self._native = _tskafka.Producer(bootstrap_servers, native(config, "producer"))

    def send(
        self,
        topic: str,
        data: Any,
        *,
        key: str | Sequence[str] | None = None,
        timestamp: str | None = None,
        partition: int | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        format: str = "arrow",
        rows_per_message: int | None = None,
        schema_header: bool = False,
        wait: bool = True,
        timeout: float | None = None,
    ) -> SendReport:
        """Send every row of ``data`` to ``topic`` and wait for the broker's acks.

        - ``format='arrow'``: each message is one Arrow IPC stream of up to
          ``rows_per_message`` rows (default 10,000; ``pyarrow.ipc.open_stream``
          reads it). ``'json'``: one JSON object per row, one row per message;
          with ``rows_per_message=N`` a message is a JSON array of up to N rows.
        - ``schema_header=True`` (json): every message also carries the column
          types in a ``tskafka.schema`` header, so tskafka reads back exactly
          the dtypes sent. Off by default: a header on every message cuts
          the send rate to about a third. Without it the consumer reads
          integers as Int64, numbers as Float64, and ISO 8601 text as
          datetimes (UTC when zoned); ``Consumer(json_schema=...)`` pins types.
        - ``key``: column(s) whose value keys each message; rows with the same
          key go to the same partition (librdkafka's partitioner). In the arrow
          format a message holds rows of one key only.
        - ``timestamp``: an event-time column used as the Kafka timestamp
          (the latest in a message, for arrow).
        - ``wait=False`` returns at once; ``flush()`` then reports.
        - ``timeout``: seconds for the cluster to answer and acknowledge
          everything; None waits as long as deliveries progress (each message
          is bounded by librdkafka's ``message.timeout.ms``).

        Raises ``ProduceError`` (with ``rows_failed``) if any row was not delivered.
        """
        return self._native.send(
            topic,
            as_arrow_stream(data),
            key=native_key(key),
            timestamp=timestamp,
            partition=partition,
            headers=native_headers(headers),
            format=format,
            rows_per_message=rows_per_message,
            schema_header=schema_header,
            wait=wait,
            timeout=timeout,
        )

    def flush(self, timeout: float | None = None) -> SendReport:
        """Wait for everything sent with ``wait=False``; report it, or raise ProduceError."""
        return self._native.flush(timeout)

    @property
    def in_flight(self) -> int:
        return self._native.in_flight

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` s for messages in flight, then close."""
        self._native.close(timeout)


class Admin:
    """Creates, deletes, lists and describes topics. ``config`` as for
    :class:`Producer` (a config.ini's ``[admin]`` section applies)."""

    def __init__(self, bootstrap_servers: str | None = None, config: ConfigLike = None) -> None:
        self._native = _tskafka.Admin(bootstrap_servers, native(config, "admin"))

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Create ``name``; with ``exist_ok`` an existing topic is not an error.
        ``config`` holds topic properties (``retention.ms``, ...)."""
        topic_config = None if config is None else Config(config).to_dict()
        self._native.create_topic(
            name, partitions, replication_factor, topic_config, exist_ok=exist_ok, timeout=timeout
        )

    def delete_topic(self, name: str, *, missing_ok: bool = False, timeout: float = 30.0) -> None:
        self._native.delete_topic(name, missing_ok=missing_ok, timeout=timeout)

    def list_topics(self, timeout: float = 10.0) -> list[str]:
        return self._native.list_topics(timeout)

    def describe_topic(self, name: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Partitions with leader, replicas and low/high watermarks."""
        return self._native.describe_topic(name, timeout)

    def __repr__(self) -> str:
        return repr(self._native)


def _millis(t: _dt.datetime | int | float) -> int:
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return int(t.timestamp() * 1000)
    return int(t)


class Consumer(_Client):
    """Reads a topic into frames.

    Give ``topics`` to join ``group_id`` (a fresh group if None) or
    ``partitions`` (``[(topic, partition)]`` or ``[(topic, partition, offset)]``)
    to read without a group. ``offset`` ('earliest'/'latest') is where a
    partition without a committed offset starts. With ``auto_commit`` the
    offsets of rows returned to you are committed in the background;
    otherwise call ``commit()`` after processing. Left as None, ``group_id``,
    ``offset`` and ``auto_commit`` come from the config (``group.id``,
    ``auto.offset.reset``, ``enable.auto.commit``, e.g. a ``[consumer]``
    section), else a fresh group, 'latest' and True; given, they win.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        config: ConfigLike = None,
        *,
        topics: Sequence[str] | None = None,
        partitions: Sequence[tuple[str, int] | tuple[str, int, int]] | None = None,
        group_id: str | None = None,
        offset: str | None = None,
        auto_commit: bool | None = None,
        format: str = "auto",
        metadata: bool = False,
        output: Output = "polars",
        on_error: str = "raise",
        json_schema: Any = None,
        timeout: float = 10.0,
    ) -> None:
        self.output = check_output(output)
        self._background: BackgroundConsumer | None = None
        self._native = _tskafka.Consumer(
            bootstrap_servers,
            native(config, "consumer"),
            group_id=group_id,
            offset=offset,
            auto_commit=auto_commit,
            format=format,
            metadata=metadata,
            on_error=on_error,
            json_schema=json_schema,
            timeout=timeout,
        )
        if topics is not None and partitions is not None:
            raise ConfigError("give topics= (a group subscription) or partitions=, not both")
        if isinstance(topics, str):
            topics = [topics]
        try:
            if topics:
                self._native.subscribe(list(topics))
            if partitions:
                self.assign(partitions)
        except BaseException:
            self._native.close()
            raise

        _open_consumers.add(self)

    def subscribe(self, topics: Sequence[str]) -> None:
        self._native.subscribe([topics] if isinstance(topics, str) else list(topics))

    def assign(self, partitions: Sequence[tuple[str, int] | tuple[str, int, int]]) -> None:
        self._native.assign([(p[0], p[1], p[2] if len(p) > 2 else None) for p in partitions])

    def poll_frame(self, max_rows: int = 100_000, timeout: float | None = 1.0) -> Any:
        """Up to ``max_rows`` rows (from as many messages as arrive within
        ``timeout`` seconds) as one frame, or None if nothing arrived."""
        bg = self._idle()
        if bg is not None:
            if bg.status.unconsumed_rows:
                # Rows a stopped background reader read but nobody took come first.
                return bg.drain(max_rows)
        # Polars holds text as string views: made natively, they cost no copy.
        table = self._native.poll_table(max_rows, timeout, string_views=self.output == "polars")
        return convert(table, self.output)

    def _idle(self) -> BackgroundConsumer | None:
        bg = self._background
        if bg is not None and bg.running:
            raise ConsumeError(
                "this consumer is reading in the background: stop() it first"
            )
        return bg

    def start(
        self,
        on_frame: Callable[[Any], object] | None = None,
        *,
        max_rows: int = 100_000,
        buffer_rows: int | None = None,
        when_full: Literal["wait", "drop"] = "wait",
    ) -> BackgroundConsumer:
        """Read on a native thread from now on: see ``BackgroundConsumer``."""
        return BackgroundConsumer(
            self, on_frame, max_rows=max_rows, buffer_rows=buffer_rows, when_full=when_full
        )

    @property
    def background(self) -> BackgroundConsumer | None:
        """The last background reader started on this consumer."""
        return self._background

    def close(self) -> None:
        """Stop a background reader (raising its error, if it failed and no
        ``stop()`` or ``join()`` has), leave the group (committing returned rows when auto-commit is on) and close."""
        bg = self._background
        try:
            if bg is not None:
                bg._close()
        finally:
            self._native.close()

    def commit(self, asynchronous: bool = False) -> None:
        """Commit the offsets of every row returned so far."""
        self._native.commit(asynchronous)

    def committed(self, timeout: float = 10.0) -> dict[tuple[str, int], int]:
        return self._native.committed(timeout)

    def assignment(self) -> list[tuple[str, int]]:
        return self._native.assignment()

    def seek(
        self,
        offset: int | str | None = None,
        *,
        timestamp: _dt.datetime | int | None = None,
        topic: str | None = None,
        partition: int | None = None,
        timeout: float = 10.0,
    ) -> list[tuple[str, int, int]]:
        """Move assigned partitions (all, or those of ``topic``/``partition``)
        to ``offset`` (a number, 'earliest', 'latest') or to the first message
        at or after ``timestamp`` (a datetime, naive meaning UTC, or epoch ms).
        Returns ``[(topic, partition, offset)]`` moved to (-1: the end)."""
        ts = None if timestamp is None else _millis(timestamp)
        bg = self._idle()
        if bg is not None and bg.status.unconsumed_rows:
            if topic is not None or partition is not None:
                raise ConsumeError(
                    f"{bg.status.unconsumed_rows} rows read in the background are not "
                    "drained yet: drain() them before moving some partitions"
                )
            # Moving every partition: rows read ahead from before the seek go.
            bg._handle.clear()
        return self._native.seek(
            offset=offset, timestamp_ms=ts, topic=topic, partition=partition, timeout=timeout
        )

    @property
    def bad_messages(self) -> list[tuple[str, int, int, str, bytes]]:
        """Messages skipped with ``on_error='skip'``: (topic, partition, offset, error, payload)."""
        return self._native.bad_messages

    def __iter__(self) -> Iterator[Any]:
        while not self.closed:
            frame = self.poll_frame()
            if frame is not None:
                yield frame


_open_consumers: _weakref.WeakSet[Consumer] = _weakref.WeakSet()


def _close_at_exit() -> None:
    """Close consumers before the interpreter tears down module globals: left
    to finalization, one may outlive a LocalBroker in the same process and
    wait out its group session trying to leave."""
    _stop_all()
    for consumer in list(_open_consumers):
        try:
            consumer._native.close()
        except BaseException:  # noqa: BLE001, S110 - exiting: nothing to report to
            pass


_threading._register_atexit(_close_at_exit)  # type: ignore[attr-defined]

from ._replay import Replay, ReplayProgress, replay  # noqa: E402

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
    "RunningAggregate",
    "SchemaError",
    "SendReport",
    "TimeoutError",
    "TsKafkaError",
    "Replay",
    "ReplayProgress",
    "iter_csv",
    "load_config",
    "read_csv",
    "replay",
]
