"""The synthetic datasets have the shape of the real ones."""

from __future__ import annotations

import datetime as dt

import polars as pl

from tskafka import datasets


def test_online_retail_shape():
    df = datasets.online_retail()
    assert df.height == datasets.RETAIL_ROWS == 1_067_371
    assert df.schema == pl.Schema(
        {
            "Invoice": pl.String,
            "StockCode": pl.String,
            "Description": pl.String,
            "Quantity": pl.Int64,
            "InvoiceDate": pl.Datetime("us"),
            "Price": pl.Float64,
            "Customer ID": pl.Int64,
            "Country": pl.String,
        }
    )
    t = df["InvoiceDate"]
    assert dt.datetime(2009, 12, 1) <= t.min() < dt.datetime(2009, 12, 3)
    assert dt.datetime(2011, 12, 1) < t.max() <= dt.datetime(2011, 12, 10)
    assert t.is_sorted()
    assert t.dt.hour().min() >= 7 and t.dt.hour().max() <= 20
    invoices = df.group_by("Invoice").agg(pl.len(), pl.col("InvoiceDate").n_unique().alias("times"))
    assert 15 < df.height / invoices.height < 25  # several lines per invoice
    assert (invoices["times"] == 1).all()
    cancelled = df["Invoice"].str.starts_with("C")
    assert 0.01 < cancelled.mean() < 0.03
    assert (df.filter(cancelled)["Quantity"] < 0).all()
    assert (df.filter(~cancelled)["Quantity"] > 0).all()
    assert 0.20 < df["Customer ID"].null_count() / df.height < 0.26
    assert 2_000 <= df["StockCode"].n_unique() <= 5_000
    per_code = df.group_by("StockCode").agg(
        pl.col("Description").n_unique(), pl.col("Price").n_unique()
    )
    assert (per_code["Description"] == 1).all() and (per_code["Price"] == 1).all()
    countries = df["Country"].value_counts(sort=True)
    assert 35 <= countries.height <= 45
    assert countries["Country"][0] == "United Kingdom"
    assert countries["count"][0] / df.height > 0.85
    assert (df["Price"] > 0).all()


def test_online_retail_is_deterministic_and_sized():
    a = datasets.online_retail(rows=10_000, seed=7)
    assert a.equals(datasets.online_retail(rows=10_000, seed=7))
    assert not a.equals(datasets.online_retail(rows=10_000, seed=8))
    assert a.height == 10_000


def test_sensors_and_irregular_series():
    s = datasets.sensors(rows=500, period=2.0)
    assert s.columns == ["timestamp", "temp1", "temp2"]
    assert s["temp1"].min() >= 20 and s["temp1"].max() <= 39
    assert s["temp2"].min() >= 10 and s["temp2"].max() <= 29
    assert (s["timestamp"].diff().drop_nulls() == dt.timedelta(seconds=2)).all()

    v = datasets.irregular_series(rows=500, max_gap=5.0)
    assert v.columns == ["timestamp", "value"]
    gaps = v["timestamp"].diff().drop_nulls().dt.total_milliseconds()
    assert gaps.min() >= 100 and gaps.max() <= 5_000 and gaps.n_unique() > 100


def test_save_and_load_round_trip(tmp_path):
    df = datasets.online_retail(rows=5_000)
    for name in ("retail.csv", "retail.parquet"):
        path = str(tmp_path / name)
        datasets.save(df, path)
        back = datasets.online_retail(path) if name.endswith(".csv") else pl.read_parquet(path)
        assert back.equals(df), name
