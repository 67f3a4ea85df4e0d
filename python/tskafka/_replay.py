"""Replay a timestamped dataset into a topic, at its recorded pace or faster."""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from . import _at_exit, _tskafka
from ._config import ConfigLike
from ._csv import csv_options
from ._frames import as_arrow_stream, native_headers, native_key
from .exceptions import ConfigError


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay stands.

    ``rows_sent`` are handed to the producer; ``rows_delivered`` are
    acknowledged by the broker. ``event_time`` is the latest event time sent.
    ``lag`` is how far behind its schedule the last message went out
    (seconds; ``max_lag`` the worst so far).
    """

    state: str
    rows_sent: int
    rows_delivered: int
    rows_failed: int
    messages: int
    bytes: int
    event_time: _dt.datetime | None
    lag: float
    max_lag: float
    elapsed: float
    rows_skipped: int

    @property
    def rows_per_second(self) -> float:
        return self.rows_delivered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def done(self) -> bool:
        return self.state in ("done", "stopped", "failed")


class Replay:
    """A replay running on its own native thread; see :func:`replay`."""

    def __init__(self, native: Any) -> None:
        self._native = native
        for message in native.warnings:
            warnings.warn(message, stacklevel=3)

    @property
    def topic(self) -> str:
        return str(self._native.topic)

    @property
    def kafka_timestamps(self) -> str:
        """'event' (messages carry the time column) or 'send' (the time they were sent)."""
        return str(self._native.kafka_timestamps)

    @property
    def progress(self) -> ReplayProgress:
        p = self._native.progress()
        us = p.pop("event_time_us")
        event_time = None
        if us is not None:
            event_time = _dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=us)
            if self._native.time_zone is not None:
                event_time = event_time.replace(tzinfo=_dt.UTC)
        return ReplayProgress(event_time=event_time, **p)

    @property
    def bad_rows(self) -> list[tuple[int, str]]:
        """CSV rows skipped with ``on_bad_rows='skip'``: (line, reason), the first 100."""
        return list(self._native.bad_rows)

    def pause(self) -> None:
        """Hold sending; ``resume()`` continues on the same schedule, shifted by the pause."""
        self._native.pause()

    def resume(self) -> None:
        self._native.resume()

    def wait(self, timeout: float | None = None) -> ReplayProgress:
        """Block until the replay has sent everything and the broker has
        acknowledged it; raise its error if it failed. Ctrl+C stops the replay
        (``stop()`` then reports the rows it left unacknowledged).
        With ``timeout``, raise ``TimeoutError`` if it is still running then."""
        try:
            finished = self._native.wait(timeout)
        except KeyboardInterrupt:
            # Stop sending and give control back at once; acks of rows already
            # sent are awaited in the background (stop() or wait() reports them).
            self._native.request_stop(10.0)
            self._native.wait(0.1)
            raise
        if not finished:
            from .exceptions import TimeoutError

            raise TimeoutError(f"replay to {self.topic!r} still running after {timeout}s")
        return self._finish()

    def stop(self, timeout: float = 10.0) -> ReplayProgress:
        """Stop sending and wait up to ``timeout`` s for the acks of rows
        already sent (rows left unacknowledged then count as failed)."""
        self._native.request_stop(timeout)
        self._native.wait(None)
        return self._finish()

    def _finish(self) -> ReplayProgress:
        self._native.check()
        return self.progress

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving the block stops the replay (wait() first to let it finish);
        the replay's own error is raised unless another is on its way out."""
        try:
            self.stop()
        except Exception:
            if exc[0] is None:
                raise

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"Replay(topic={self.topic!r}, state={p.state!r}, rows_sent={p.rows_sent:,}, "
            f"rows_delivered={p.rows_delivered:,}, event_time={p.event_time}, lag={p.lag:.3f}s)"
        )


class _RunningReplays:
    """Every replay of the process still running, its handle kept or not
    (a replay goes on to its end when nobody holds it): stopped at exit
    instead of being cut off mid-send."""

    def _stop_at_exit(self) -> None:
        _tskafka.stop_replays(2.0)


_RUNNING = _RunningReplays()
_at_exit.stop_at_exit(_RUNNING, _at_exit.Stage.REPLAY)


def _source(source: Any, chunk_rows: int) -> Any:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ConfigError(f"replay source {path!r} does not exist")
        lower = path.lower()
        if lower.endswith((".parquet", ".pq")):
            import pyarrow.dataset as ds

            return ds.dataset(path, format="parquet").scanner(batch_size=chunk_rows).to_reader()
        if lower.endswith((".csv", ".tsv", ".txt")):
            return path
        raise ConfigError(f"cannot replay {path!r}: give a .csv/.tsv or .parquet file, or a frame")
    return as_arrow_stream(source)


def replay(
    source: Any,
    topic: str,
    bootstrap_servers: str | None = None,
    config: ConfigLike = None,
    *,
    time_column: str | None = None,
    speed: float | None = 1.0,
    every: float | None = None,
    window: float = 0.0,
    rows_per_message: int | None = None,
    key: str | Sequence[str] | None = None,
    timestamp: str = "auto",
    format: str = "arrow",
    schema_header: bool = False,
    headers: Mapping[str, str | bytes] | None = None,
    encoding: str = "auto",
    time_format: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    on_bad_rows: str = "error",
    chunk_rows: int = 65_536,
    timeout: float = 30.0,
    subject: str | None = None,
    schema: str | None = None,
) -> Replay:
    """Start replaying ``source`` into ``topic`` on a native thread; returns at once.

    ``source``: a CSV file (read in chunks natively, so memory stays flat;
    ``encoding`` 'auto' (UTF-8, else Latin-1 per field), 'utf-8' or
    'latin-1'; datetimes in the common forms parsed, or as ``time_format``
    says: a strftime format or 'epoch_s'/'epoch_ms'/'epoch_us'/'epoch_ns';
    ``dtypes`` pins column types; ``on_bad_rows='skip'`` skips and counts
    rows that do not parse instead of raising), a Parquet file, or any frame.

    Pace:

    - ``speed=10``: the gaps between consecutive event times in
      ``time_column``, divided by 10, are reproduced. Rows with the same
      time (or within ``window`` seconds of a message's first row) go out
      together in one message. The schedule is kept against the start, so
      it does not drift; when sending falls behind, messages go out at once
      until it catches up (``progress.lag`` shows by how much), nothing is
      dropped. Rows whose time is earlier than the first row's go out at once.
    - ``every=0.5``: one message of ``rows_per_message`` rows (default 1)
      every half second.
    - ``speed=None``: as fast as possible.

    ``timestamp``: 'event' stamps messages with the time column, 'send'
    with the time they are sent; 'auto' (default) uses event times unless
    they are older than the topic's ``retention.ms`` (the broker would
    delete them at once), in which case it stamps send times and warns.

    ``key``, ``format`` (also 'avro' and 'json_schema', one row per message),
    ``subject``, ``schema``, ``schema_header``, ``headers`` and ``config`` are as in
    :meth:`Producer.send` and :class:`Producer` (a :class:`Config`, a dict or
    a config.ini path, whose ``[producer]`` section applies).
    """
    from ._config import native as native_config

    native = _tskafka.Replay(
        topic,
        _source(source, chunk_rows),
        bootstrap_servers,
        native_config(config, "producer"),
        speed=speed,
        every=every,
        window=window,
        rows_per_message=rows_per_message,
        key=native_key(key),
        timestamp=timestamp,
        format=format,
        schema_header=schema_header,
        headers=native_headers(headers),
        timeout=timeout,
        subject=subject,
        schema=schema,
        # The time column paces any source; in a CSV it is also read as datetimes.
        **csv_options(
            time_column=time_column,
            time_format=time_format,
            encoding=encoding,
            dtypes=dtypes,
            on_bad_rows=on_bad_rows,
            chunk_rows=chunk_rows,
        ),
    )
    return Replay(native)
