"""``tskafka.Producer``: whole frames to a topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _tskafka
from ._client import _Client
from ._config import ConfigLike, native
from ._frames import as_arrow_stream, native_headers, native_key
from ._tskafka import SendReport


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
        value: str | None = None,
        subject: str | None = None,
        schema: str | None = None,
        json_orient: str | None = None,
    ) -> SendReport:
        """Send every row of ``data`` to ``topic`` and wait for the broker's acks.

        - ``format='arrow'``: each message is one Arrow IPC stream of up to
          ``rows_per_message`` rows (default 10,000; ``pyarrow.ipc.open_stream``
          reads it). ``'json'``: one JSON object per row, one row per message;
          with ``rows_per_message=N`` a message is a JSON array of up to N rows.
        - ``'csv'``: each row one CSV line, no header (what consumers that
          split a value on commas expect; ``rows_per_message=N`` puts N lines
          in a message), datetimes as ``2023-03-20 12:00:00.123456`` (with
          ``+00:00`` when zoned), nulls empty, fields quoted only when they
          hold a comma, a quote or a line break.
        - ``'text'``: the ``value`` column (or the only column) as UTF-8 text;
          ``'raw'``: the ``value`` column's bytes (binary or text) as they
          are, one message per row, keyed by a binary ``key`` column's bytes,
          so a topic read with ``format='raw'`` is copied as it was.
        - ``format='avro'`` / ``'json_schema'``: one row per message in the
          Schema Registry framing (a zero byte, the schema id, then the Avro
          record or JSON object), as Confluent's serializers write it; needs
          ``schema.registry.url`` in the config. The schema is derived from
          the frame (``schema=`` gives one as text) and registered under
          ``<topic>-value`` (``subject=`` to choose another).
        - ``schema_header=True`` (json): every message also carries the column
          types in a ``tskafka.schema`` header, so tskafka reads back exactly
          the dtypes sent. Off by default: a header on every message cuts
          the send rate to about a third. Without it the consumer reads
          integers as Int64, numbers as Float64, and ISO 8601 text as
          datetimes (UTC when zoned); ``Consumer(json_schema=...)`` pins types.
        - ``json_orient`` (json): each message laid out as pandas'
          ``DataFrame.to_json(orient=...)`` writes it, for consumers that read
          pandas' shapes: ``'records'`` (the default), ``'columns'`` (also
          ``to_dict()``'s default), ``'index'``, ``'split'``, ``'values'``,
          ``'table'``; with ``rows_per_message=N`` rows per message (row labels
          count the rows sent from 0, as ``read_csv(chunksize=N)`` does).
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
            value=value,
            subject=subject,
            schema=schema,
            json_orient=json_orient,
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
