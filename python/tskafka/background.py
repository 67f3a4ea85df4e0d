"""A consumer read on a native thread, handing frames to a callback and/or a buffer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from . import _at_exit, _tskafka
from ._frames import convert
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .consumer import Consumer


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
