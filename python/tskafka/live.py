"""Live Plotly charts fed by a background consumer (``pip install "tskafka[live]"``).

A chart is a callback: ``consumer.start(chart)``. The consumer's thread only
hands it rows (kept under a lock: cheap); the figure is redrawn on the
chart's own Python thread, inside ``figure.batch_update()``, at most ``fps``
times a second and only when new rows came, however fast they arrive. Widget
updates from that thread reach Jupyter the way any ipywidget's do. Without a
notebook front end the figure's data still changes, so scripts and tests can
read it back.

Pass ``figure=`` to draw on a ``go.FigureWidget`` you styled: traces named
like the columns (line chart) or the first bar trace (bar chart) are reused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

import polars as pl

from . import _at_exit
from .aggregate import RunningAggregate, _as_frame

try:
    import anywidget  # noqa: F401 - plotly's FigureWidget needs it
    import plotly.graph_objects as go
except ImportError as e:
    raise ImportError(
        f"tskafka.live draws with Plotly in widgets, and {e.name or 'plotly'} is not "
        'installed: pip install "tskafka[live]" (plotly and anywidget)'
    ) from e


class _LiveFigure:
    """Rows in from any thread; throttled redraws on a thread of its own."""

    def __init__(self, figure: go.FigureWidget | None, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.figure = figure if figure is not None else go.FigureWidget()
        self.fps = fps
        self.redraws = 0
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        _at_exit.stop_at_exit(self, _at_exit.Stage.LIVE_CHART)

    # --- to override -------------------------------------------------------
    def _take(self, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def _draw(self) -> None:
        raise NotImplementedError

    # --- public ------------------------------------------------------------
    def update(self, frame: Any) -> None:
        """Take a batch (polars, pandas or Arrow); a redraw follows within 1/fps s."""
        if self._error is not None:
            raise self._error
        df = _as_frame(frame)
        with self._lock:
            self._take(df)
        self._dirty.set()
        if self._thread is None and not self._stop.is_set():
            self.start()

    __call__ = update

    def draw(self) -> None:
        """Redraw now, on the calling thread."""
        self._dirty.clear()
        with self._lock, self.figure.batch_update():
            self._draw()
        self.redraws += 1

    def start(self) -> Self:
        """Start redrawing (``update`` does this on its first batch)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tskafka-live", daemon=True)
            self._thread.start()
        return self

    def stop(self, draw: bool = True) -> None:
        """Stop redrawing (after drawing what came last); rows still arriving
        are kept but not drawn until ``start()`` or ``draw()``."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if draw and self._dirty.is_set():
            self.draw()
        if self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _stop_at_exit(self) -> None:
        self.stop(draw=False)

    def _run(self) -> None:
        interval = 1.0 / self.fps
        while not self._stop.is_set():
            if not self._dirty.wait(0.1) or self._stop.is_set():
                continue
            started = time.monotonic()
            try:
                self.draw()
            except BaseException as e:  # noqa: BLE001 - kept, raised by update() and stop()
                self._error = e
                return
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.figure._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.figure)


class LineChart(_LiveFigure):
    """The last ``last`` points of columns ``y`` against ``x``, one trace each.

    ``fill="tozeroy"`` (or any Plotly scatter ``fill``) fills under the lines;
    ``mode`` is Plotly's ("lines", "markers", "lines+markers"). Points are kept
    in ``x`` order.
    """

    def __init__(
        self,
        x: str,
        y: str | Sequence[str],
        *,
        last: int = 100,
        figure: go.FigureWidget | None = None,
        fill: str | None = None,
        mode: str = "lines+markers",
        fps: float = 10.0,
    ) -> None:
        super().__init__(figure, fps)
        if last < 1:
            raise ValueError(f"last must be >= 1, got {last}")
        self.x = x
        self.y = [y] if isinstance(y, str) else list(y)
        self.last = last
        self.window = pl.DataFrame()
        names = [t.name for t in self.figure.data]
        with self.figure.batch_update():
            for col in self.y:
                if col not in names:
                    self.figure.add_scatter(x=[], y=[], name=col, mode=mode, fill=fill)
        self._traces = {t.name: t for t in self.figure.data if t.name in self.y}

    def _take(self, frame: pl.DataFrame) -> None:
        part = frame.select(self.x, *self.y)
        window = (
            part
            if self.window.is_empty()
            else pl.concat([self.window, part], how="vertical_relaxed")
        )
        self.window = window.sort(self.x, maintain_order=True).tail(self.last)

    def _draw(self) -> None:
        xs = self.window[self.x].to_list() if self.x in self.window.columns else []
        for col, trace in self._traces.items():
            trace.x = xs
            trace.y = self.window[col].to_list() if col in self.window.columns else []


class BarChart(_LiveFigure):
    """The top ``top`` groups of a ``RunningAggregate`` by ``value``, largest
    first. As a callback it feeds the aggregate too; if something else feeds
    it, call ``refresh()`` after each update."""

    def __init__(
        self,
        aggregate: RunningAggregate,
        value: str | None = None,
        *,
        top: int = 10,
        figure: go.FigureWidget | None = None,
        orientation: str = "v",
        fps: float = 10.0,
    ) -> None:
        super().__init__(figure, fps)
        self.aggregate = aggregate
        self.value = value or aggregate.names[0]
        if self.value not in aggregate.names:
            raise ValueError(f"value must be one of {aggregate.names}, got {self.value!r}")
        self.top = top
        self.orientation = orientation
        bars = [t for t in self.figure.data if t.type == "bar"]
        if not bars:
            self.figure.add_bar(x=[], y=[], name=self.value, orientation=orientation)
            bars = [t for t in self.figure.data if t.type == "bar"]
        self._bar = bars[0]

    def _take(self, frame: pl.DataFrame) -> None:
        self.aggregate.update(frame)

    def refresh(self) -> None:
        """Mark the chart for a redraw (the aggregate was updated elsewhere)."""
        self._dirty.set()
        if self._thread is None and not self._stop.is_set():
            self.start()

    def _draw(self) -> None:
        result = self.aggregate.result(top=self.top, sort=self.value, descending=True)
        keys = self.aggregate.key_names
        if keys:
            labels = (
                result.select(
                    pl.concat_str([pl.col(k).cast(pl.Utf8) for k in keys], separator=" / ")
                )
                .to_series()
                .to_list()
            )
        else:
            labels = [self.value]
        values = result[self.value].to_list()
        if self.orientation == "h":
            # Plotly draws the first category at the bottom: largest on top.
            self._bar.x, self._bar.y = values[::-1], labels[::-1]
        else:
            self._bar.x, self._bar.y = labels, values


def tee(*callbacks: Callable[[Any], object]) -> Callable[[Any], None]:
    """One callback that hands each frame to every one of ``callbacks`` in turn."""

    def call_all(frame: Any) -> None:
        for callback in callbacks:
            callback(frame)

    return call_all


__all__ = ["BarChart", "LineChart", "tee"]
