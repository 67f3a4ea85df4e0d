"""Running aggregates equal one group-by over all rows, however rows are batched."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import numpy as np
import polars as pl
import pytest
from helpers import retail_frame
from polars.testing import assert_frame_equal

import tskafka as tk
from tskafka import datasets

REVENUE = pl.col("Quantity") * pl.col("Price")


def random_batches(df: pl.DataFrame, seed: int) -> list[pl.DataFrame]:
    """``df`` cut at random places, including empty and one-row batches."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, df.height + 1, rng.integers(1, 40)))
    edges = [0, *cuts.tolist(), df.height]
    return [df.slice(a, b - a) for a, b in itertools.pairwise(edges)]


def fold(agg: tk.RunningAggregate, df: pl.DataFrame, seed: int) -> tk.RunningAggregate:
    for batch in random_batches(df, seed):
        agg.update(batch)
    return agg


@pytest.mark.parametrize("seed", range(6))
def test_every_kept_aggregation_matches_one_group_by(seed):
    df = retail_frame(3_000, seed=seed)
    aggs = {
        "revenue": REVENUE,
        "quantity": pl.col("Quantity").sum(),
        "lines": pl.len(),
        "customers_known": pl.col("Customer ID").count(),
        "mean_price": pl.col("Price").mean(),
        "mean_revenue": REVENUE.mean(),
        "min_q": pl.col("Quantity").min(),
        "max_q": pl.col("Quantity").max(),
        "first_row": pl.col("row").first(),
        "last_customer": pl.col("Customer ID").last(),
    }
    running = fold(tk.RunningAggregate(by=["StockCode", "Country"], aggs=aggs), df, seed)
    batch_aggs = [(v if k != "revenue" else v.sum()).alias(k) for k, v in aggs.items()]
    expected = df.group_by("StockCode", "Country").agg(batch_aggs).sort("StockCode", "Country")
    got = running.result()
    assert_frame_equal(got, expected, check_dtypes=False, abs_tol=1e-9, rel_tol=1e-9)
    assert running.rows == df.height


@pytest.mark.parametrize("seed", range(3))
def test_per_minute_buckets_of_sensor_readings(seed):
    df = datasets.sensors(rows=2_000, period=1.7, seed=seed)
    minute = pl.col("timestamp").dt.truncate("1m").alias("minute")
    aggs = {"n": pl.len(), "temp1": pl.col("temp1").mean(), "temp2_max": pl.col("temp2").max()}
    running = fold(tk.RunningAggregate(by=minute, aggs=aggs), df, seed)
    expected = (
        df.group_by(minute)
        .agg(pl.len().alias("n"), pl.col("temp1").mean(), pl.col("temp2").max().alias("temp2_max"))
        .sort("minute")
    )
    assert_frame_equal(running.result(), expected, check_dtypes=False)
    assert running.result()["n"].sum() == 2_000


def test_top_n_by_revenue_and_totals_without_keys():
    df = datasets.online_retail(rows=20_000)
    running = fold(tk.RunningAggregate(by="StockCode", aggs={"revenue": REVENUE}), df, 7)
    top = running.result(top=10)
    expected = datasets.revenue_by_stock_code(df, top=10)
    assert top["StockCode"].to_list() == expected["StockCode"].to_list()
    assert np.allclose(top["revenue"].to_numpy(), expected["revenue"].to_numpy())
    assert running.result(top=3, sort="revenue", descending=False)["revenue"].is_sorted()

    totals = fold(tk.RunningAggregate(by=None, aggs=[REVENUE.sum().alias("r"), pl.len()]), df, 3)
    out = totals.result()
    assert out.columns == ["r", "len"] and out["len"].item() == 20_000
    assert out["r"].item() == pytest.approx(df.select(REVENUE.sum()).item())


def test_any_frame_type_and_the_empty_result():
    running = tk.RunningAggregate(by="k", aggs={"s": pl.col("v").sum()})
    assert running.result().columns == ["k", "s"] and len(running) == 0
    running.update(pl.DataFrame({"k": ["a", "b"], "v": [1, 2]}).to_arrow())
    running.update(pl.DataFrame({"k": ["a"], "v": [10]}).to_pandas())
    running.update(pl.DataFrame({"k": ["b"], "v": [5]}))
    assert running.result().rows() == [("a", 11), ("b", 7)]
    running.reset()
    assert len(running) == 0 and running.rows == 0


@pytest.mark.parametrize("expr", [pl.col("v").n_unique(), pl.col("v").median(), pl.col("v").std()])
def test_what_cannot_be_kept_is_refused_with_the_alternatives(expr):
    with pytest.raises(tk.ConfigError, match="sum, count, len, mean"):
        tk.RunningAggregate(by="k", aggs={"x": expr})


def test_fed_by_a_background_consumer(bootstrap, topic):
    df = retail_frame(5_000)
    tk.Producer(bootstrap).send(topic, df, key="StockCode", rows_per_message=200)
    minute = pl.col("InvoiceDate").dt.truncate("1h")
    running = tk.RunningAggregate(by=["StockCode", minute], aggs={"revenue": REVENUE})
    with (
        tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c,
        c.start(running, max_rows=700),
    ):
        deadline = time.monotonic() + 20
        while running.rows < 5_000:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert running.batches > 1
    expected = df.group_by("StockCode", minute).agg(REVENUE.sum().alias("revenue"))
    assert_frame_equal(
        running.result(), expected.sort("StockCode", "InvoiceDate"), check_dtypes=False
    )
    assert running.result()["InvoiceDate"].dtype == pl.Datetime("us")
    assert dt.datetime(2009, 12, 1, 7) in running.result()["InvoiceDate"].to_list()
