"""Live charts: the FigureWidget's data after a known stream, throttled redraws."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from helpers import retail_frame

import tskafka as tk
from tskafka import datasets

go = pytest.importorskip("plotly.graph_objects")
live = pytest.importorskip("tskafka.live")


def batches(df: pl.DataFrame, seed: int = 0) -> list[pl.DataFrame]:
    rng = np.random.default_rng(seed)
    out, start = [], 0
    while start < df.height:
        n = int(rng.integers(1, 9))
        out.append(df.slice(start, n))
        start += n
    return out


def test_line_chart_holds_the_last_points_of_each_column():
    df = datasets.sensors(rows=100, period=2.0)
    chart = live.LineChart("timestamp", ["temp1", "temp2"], last=12, fill="tozeroy")
    for b in batches(df):
        chart.update(b)
    chart.stop()
    temp1, temp2 = chart.figure.data
    tail = df.tail(12)
    assert (temp1.name, temp2.name) == ("temp1", "temp2")
    assert list(temp1.x) == tail["timestamp"].to_list() == list(temp2.x)
    assert list(temp1.y) == tail["temp1"].to_list()
    assert list(temp2.y) == tail["temp2"].to_list()
    assert temp1.fill == "tozeroy" and chart.redraws >= 1 and not chart.running


def test_line_chart_orders_points_by_x_across_batches():
    df = datasets.sensors(rows=30)
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=3)
    chart = live.LineChart("timestamp", "temp1", last=5)
    for b in batches(shuffled, seed=1):
        chart.update(b.to_arrow())
    chart.stop()
    assert list(chart.figure.data[0].y) == df.tail(5)["temp1"].to_list()


def test_reuses_a_styled_figure():
    fig = go.FigureWidget()
    fig.add_scatter(name="temp1", line={"color": "crimson"}, fill="tozeroy")
    fig.update_layout(title="Sensor 7")
    chart = live.LineChart("timestamp", ["temp1", "temp2"], last=3, figure=fig)
    chart.update(datasets.sensors(rows=10))
    chart.stop()
    assert chart.figure is fig and len(fig.data) == 2
    assert fig.data[0].line.color == "crimson" and fig.layout.title.text == "Sensor 7"
    assert len(fig.data[0].y) == 3 and fig.data[1].name == "temp2"


def test_redraws_are_throttled_however_fast_rows_come():
    df = datasets.sensors(rows=3_000, period=0.1)
    chart = live.LineChart("timestamp", ["temp1"], last=50, fps=10)
    started = time.monotonic()
    for i in range(df.height):
        chart.update(df.slice(i, 1))
        if i % 100 == 0:
            time.sleep(0.05)  # spread the rows over more than a second
    elapsed = time.monotonic() - started
    chart.stop()
    assert elapsed > 1.0
    # At most fps per second while running, plus the final draw at stop().
    assert 1 < chart.redraws <= elapsed * 10 + 2, (chart.redraws, elapsed)
    assert list(chart.figure.data[0].y) == df.tail(50)["temp1"].to_list()


def test_bar_chart_shows_the_running_top_n():
    df = datasets.online_retail(rows=20_000)
    revenue = tk.RunningAggregate(
        by="StockCode", aggs={"revenue": pl.col("Quantity") * pl.col("Price")}
    )
    chart = live.BarChart(revenue, top=10)
    for b in np.array_split(np.arange(df.height), 37):
        chart.update(df[b.tolist()])
    chart.stop()
    expected = datasets.revenue_by_stock_code(df, top=10)
    bar = chart.figure.data[0]
    assert list(bar.x) == expected["StockCode"].to_list()
    assert np.allclose(list(bar.y), expected["revenue"].to_list())

    horizontal = live.BarChart(revenue, "revenue", top=3, orientation="h")
    horizontal.refresh()
    horizontal.stop()
    assert list(horizontal.figure.data[0].y) == expected["StockCode"].to_list()[:3][::-1]


def test_charts_fed_by_a_background_consumer(bootstrap, topic):
    df = retail_frame(3_000).with_columns(pl.col("Price").alias("price"))
    tk.Producer(bootstrap).send(topic, df, partition=0, rows_per_message=100)
    line = live.LineChart("InvoiceDate", "price", last=20)
    revenue = tk.RunningAggregate(
        by="StockCode", aggs={"revenue": pl.col("Quantity") * pl.col("Price")}
    )
    bars = live.BarChart(revenue, top=3)
    with (
        tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c,
        c.start(live.tee(line, bars), max_rows=250),
    ):
        deadline = time.monotonic() + 20
        while revenue.rows < 3_000:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    line.stop()
    bars.stop()
    assert list(line.figure.data[0].y) == df.tail(20)["price"].to_list()
    assert list(bars.figure.data[0].x) == revenue.result(top=3)["StockCode"].to_list()


def test_a_missing_column_fails_the_update():
    chart = live.LineChart("timestamp", ["nope"], last=3)
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        chart.update(datasets.sensors(rows=3))
    chart.stop()
