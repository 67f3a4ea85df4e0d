"""``tskafka.Consumer``: a topic read into frames, on the caller's thread or, with
``start()``, on a native one (``BackgroundConsumer``)."""

from __future__ import annotations

import datetime as _dt
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, SupportsIndex

from . import _at_exit, _tskafka
from ._client import _Client
from ._config import ConfigLike, native
from ._frames import Output, check_output, convert
from .exceptions import ConfigError, ConsumeError

Assignment = Iterable[tuple[str, int] | tuple[str, int, int]]


def _topic_names(topics: str | Iterable[str]) -> list[str]:
    """``topics`` as the native subscribe takes them: a list of names."""
    if isinstance(topics, str):
        return [topics]
    names = list(topics) if isinstance(topics, Iterable) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"topics must be a topic name or a list of names, got {topics!r}")
    return names


def _partition_list(partitions: Assignment) -> list[tuple[str, int, int | None]]:
    """``partitions`` as the native assign takes them: (topic, partition, offset or None)."""
    shape = "a list of (topic, partition) or (topic, partition, offset) tuples"
    if isinstance(partitions, str) or not isinstance(partitions, Iterable):
        raise ConfigError(f"partitions must be {shape}, got {partitions!r}")
    out = []
    for p in partitions:
        entry = _partition_entry(p)
        if entry is None:
            raise ConfigError(f"partitions must be {shape}, got {p!r}")
        out.append(entry)
    return out


def _partition_entry(p: object) -> tuple[str, int, int | None] | None:
    """(topic, partition, offset or None), or None if ``p`` is not such a tuple."""
    if not isinstance(p, Sequence) or isinstance(p, str) or len(p) not in (2, 3):
        return None
    topic, partition, offset = p[0], _integer(p[1]), p[2] if len(p) == 3 else None
    start = None if offset is None else _integer(offset)
    if not isinstance(topic, str) or partition is None or (offset is not None and start is None):
        return None
    return topic, partition, start


def _integer(value: object) -> int | None:
    """``value`` as an int if it is one (numpy integers too, not bools), else None."""
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        return None
    return operator.index(value)


def _column_names(columns: Sequence[str]) -> list[str]:
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ConfigError(f"columns must be a list of column names, got {columns!r}")
    return list(columns)


def _csv_dtypes(schema: Any) -> dict[str, str] | None:
    """``schema=`` as the native side takes it: {column: dtype name}, from
    a dict of names or dtypes (polars, pyarrow, numpy) or a pyarrow schema."""
    if schema is None:
        return None
    if hasattr(schema, "names") and hasattr(schema, "types"):
        schema = dict(zip(schema.names, schema.types, strict=True))
    if not isinstance(schema, dict):
        raise ConfigError(f"schema must be a dict of column -> dtype, got {schema!r}")
    out = {}
    for name, dtype in schema.items():
        text = str(dtype).lower()
        if text.startswith(("datetime", "timestamp")):
            text = "datetime"
        elif text.startswith("date"):
            text = "date"
        out[str(name)] = {"double": "float64", "large_string": "str"}.get(text, text)
    return out


def _millis(t: _dt.datetime | float) -> int:
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

    ``format``: 'auto' (Arrow IPC or JSON, per message), 'arrow', 'json', or
    for data written by other producers:

    - 'raw': one row per message, ``key`` and ``value`` as bytes, with
      ``topic``, ``partition``, ``offset``, ``timestamp`` and ``headers``
      (a list of {key, value}); a tombstone's value is null.
    - 'text': the same, key and value as UTF-8 text; a value that is not
      UTF-8 is a DecodeError, or with ``errors='replace'`` its bad bytes
      become U+FFFD.
    - 'csv': each message one or more CSV lines. ``columns=[...]`` names the
      fields (or ``header=True``: each message's first line names them;
      else column_1, column_2, ...). Types are inferred as ``read_csv``
      infers them, from the first frame read, and kept for the stream;
      ``schema={"temp2": "float64"}`` (or a pyarrow schema) pins them.
      ``delimiter`` and ``encoding`` as in ``read_csv``. A line with the
      wrong number of fields, or a value that does not fit its column, is a
      DecodeError naming the message and the field.
    - 'avro' / 'json_schema': the Schema Registry framing
      (``schema.registry.url`` in the config; 'auto' recognises it too).
      ``key_format='avro'`` shows Avro-framed keys in ``kafka_key`` as text
      (a string as itself, others as JSON).
    ``json_orient`` says how JSON messages are laid out, in pandas' names
    (``pandas.read_json(orient=...)``): ``'records'``, ``'columns'`` (also
    ``to_dict()``'s default, ``'dict'``), ``'index'`` (also a Series'
    ``{label: value}``), ``'split'``, ``'values'``, ``'table'``. None detects
    the shapes no record could be (``to_dict()`` of a frame, ``to_json(orient=
    'table')``) and reads the rest as records. A default index is dropped;
    other row labels become an ``index`` column. ``NaN``/``Infinity`` tokens
    read as null.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        config: ConfigLike = None,
        *,
        topics: str | Iterable[str] | None = None,
        partitions: Assignment | None = None,
        group_id: str | None = None,
        offset: str | None = None,
        auto_commit: bool | None = None,
        format: str = "auto",
        metadata: bool = False,
        output: Output = "polars",
        on_error: str = "raise",
        json_schema: Any = None,
        timeout: float = 10.0,
        errors: str = "strict",
        columns: Sequence[str] | None = None,
        header: bool = False,
        schema: Any = None,
        delimiter: str = ",",
        encoding: str = "utf-8",
        key_format: str | None = None,
        json_orient: str | None = None,
    ) -> None:
        self.output = check_output(output)
        if topics is not None and partitions is not None:
            raise ConfigError("give topics= (a group subscription) or partitions=, not both")
        # Checked before a client is made: a bad argument fails at once.
        topic_names = None if topics is None else _topic_names(topics)
        assignment = None if partitions is None else _partition_list(partitions)
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
            errors=errors,
            columns=None if columns is None else _column_names(columns),
            header=header,
            schema=_csv_dtypes(schema),
            delimiter=delimiter,
            encoding=encoding,
            key_format=key_format,
            json_orient=json_orient,
        )
        try:
            if topic_names:
                self._native.subscribe(topic_names)
            if assignment:
                self._native.assign(assignment)
        except BaseException:
            self._native.close()
            raise
        _at_exit.stop_at_exit(self, _at_exit.Stage.CONSUMER)

    def subscribe(self, topics: str | Iterable[str]) -> None:
        self._native.subscribe(_topic_names(topics))

    def assign(self, partitions: Assignment) -> None:
        self._native.assign(_partition_list(partitions))

    def poll_frame(self, max_rows: int = 100_000, timeout: float | None = 1.0) -> Any:
        """Up to ``max_rows`` rows (from as many messages as arrive within
        ``timeout`` seconds) as one frame, or None if nothing arrived."""
        bg = self._idle()
        if bg is not None and bg.status.unconsumed_rows:
            # Rows a stopped background reader read but nobody took come first.
            return bg.drain(max_rows)
        # Polars holds text as string views: made natively, they cost no copy.
        frame = self._native.poll_frame(max_rows, timeout, string_views=self.output == "polars")
        return convert(frame, self.output)

    def _idle(self) -> BackgroundConsumer | None:
        bg = self._background
        if bg is not None and bg.running:
            raise ConsumeError("this consumer is reading in the background: stop() it first")
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
            _at_exit.forget(self, _at_exit.Stage.CONSUMER)

    def _stop_at_exit(self) -> None:
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
            bg._native.clear()
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


@dataclass(frozen=True)
class BackgroundStatus:
    """What a background consumer is doing and has done."""

    state: str
    """'running', 'stopping', 'stopped' or 'failed'."""
    rows: int
    frames: int
    buffered_rows: int
    dropped_rows: int
    unconsumed_rows: int
    error: BaseException | None


class BackgroundConsumer:
    """Reads ``consumer`` on a native thread until ``stop()``
    (``consumer.start(...)`` makes one).

    Polling and decoding run without the GIL. Each frame (up to ``max_rows``
    rows, in the consumer's ``output`` type) goes to ``on_frame``, called on
    that thread with the GIL held only for the call; the next frame is read
    when it returns, so a slow callback slows reading, not memory.

    The buffer (``latest(n)``, ``drain()``) holds at most ``buffer_rows`` rows:

    - without a callback (default 1,000,000 rows) rows wait there until
      ``drain()``; with ``when_full='wait'`` reading pauses while it is full,
      with ``'drop'`` the oldest rows go.
    - with a callback (default 0: no buffer) it keeps the last
      ``buffer_rows`` rows handed to the callback, for ``latest(n)``.

    Rows count as consumed (committed with ``auto_commit``, or by
    ``consumer.commit()``) once the callback returned for them, or once they
    are drained (or, with ``when_full='drop'``, once buffered). An exception
    in the callback or in decoding ends the thread; ``stop()`` and ``join()``
    raise it (and ``consumer.close()``, if neither has), ``status.error``
    holds it, and the frame the callback failed on is not consumed: the
    consumer's next read returns it again. Rows still waiting in the buffer
    after ``stop()`` can be drained, and are otherwise returned first by the
    consumer's next ``poll_frame`` or carried into its next ``start()``.
    """

    _native: _tskafka.Background

    def __init__(
        self,
        consumer: Consumer,
        on_frame: Callable[[Any], object] | None = None,
        *,
        max_rows: int = 100_000,
        buffer_rows: int | None = None,
        when_full: Literal["wait", "drop"] = "wait",
    ) -> None:
        if when_full not in ("wait", "drop"):
            raise ConfigError(f"when_full must be 'wait' or 'drop', got {when_full!r}")
        if buffer_rows is None:
            buffer_rows = 0 if on_frame is not None else 1_000_000
        if buffer_rows < 0 or max_rows < 1:
            raise ConfigError(
                f"need max_rows >= 1 and buffer_rows >= 0, got {max_rows} and {buffer_rows}"
            )
        self.consumer = consumer
        self.output = consumer.output
        self.on_frame = on_frame
        # The native reader refuses to start while ``previous`` still runs.
        previous = consumer._background
        sink = None
        if on_frame is not None:
            output = self.output

            def sink(table: Any) -> None:
                on_frame(convert(table, output))

        self._native = _tskafka.Background(
            consumer._native,
            sink,
            max_rows=max_rows,
            buffer_rows=buffer_rows,
            drop_oldest=when_full == "drop",
            previous=None if previous is None else previous._native,
        )
        self._reported = False
        consumer._background = self
        _at_exit.stop_at_exit(self, _at_exit.Stage.BACKGROUND_READER)

    def _stop_at_exit(self) -> None:
        self._native.stop(timeout=2.0, raise_error=False)

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading and wait for the thread (it looks every 0.1 s, so this
        takes as long as a callback still running). Raises the error that
        ended the thread, if one did (every time)."""
        self._raising(self._native.stop, timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the thread to end by itself (it does on
        an error or a closed consumer); True if it has. Raises its error."""
        return bool(self._raising(self._native.join, timeout))

    def _raising(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BaseException as e:
            if e is self._native.status["error"]:
                self._reported = True
            raise

    def _close(self) -> None:
        """Stop for the consumer's close(): raise an error nobody has seen yet."""
        self._native.stop(None, raise_error=False)
        if not self._reported:
            self.stop()

    @property
    def running(self) -> bool:
        return bool(self._native.running)

    @property
    def status(self) -> BackgroundStatus:
        return BackgroundStatus(**self._native.status)

    def latest(self, n: int) -> Any:
        """The newest ``n`` buffered rows as a frame (they stay buffered), or None."""
        return convert(self._native.latest(n), self.output)

    def drain(self, max_rows: int | None = None) -> Any:
        """Take the buffered rows out, oldest first, as one frame (None if
        empty); they count as consumed now. ``max_rows`` bounds the rows
        taken, except that a frame not yet consumed goes whole (the reader's
        ``max_rows`` bounds those). A column type change ends a frame, as in
        ``poll_frame``: drain again for the rest."""
        return convert(self._native.drain(max_rows), self.output)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return repr(self._native)
