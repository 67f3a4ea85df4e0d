"""JSON as pandas writes it, from the tutorials' own producer code: kafka-python
sending ``json.dumps(chunk.to_dict(), default=str)`` per CSV chunk, a Series'
``{timestamp: value}`` per message, and every orient both ways."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers import read_all, retail_frame

import tskafka as tk
from tskafka.exceptions import DecodeError


@pytest.fixture
def make_topic(broker_process):
    admin = tk.Admin(broker_process)
    names = iter(range(1_000))

    def make() -> str:
        name = f"pandas-{next(names)}-{np.random.default_rng().integers(1 << 30)}"
        admin.create_topic(name)
        return name

    return make


@pytest.fixture(scope="module")
def retail_csv(tmp_path_factory) -> str:
    """The retail sample as a CSV: Customer ID has gaps (NaN in pandas)."""
    path = tmp_path_factory.mktemp("retail") / "retail.csv"
    retail_frame(1_203, seed=7).drop("row").write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S")
    return str(path)


def kafka_python_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap)


def read_frame(bootstrap: str, topic: str, rows: int, **kwargs) -> pl.DataFrame:
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", **kwargs) as c:
        return read_all(c, rows)


def test_pandas_chunks_tutorial_reads_as_pandas_reads_the_csv(
    broker_process, make_topic, retail_csv
):
    topic = make_topic()
    producer = kafka_python_producer(broker_process)
    # The tutorial's loop, as written.
    for chunk in pd.read_csv(retail_csv, chunksize=10):
        producer.send(topic, json.dumps(chunk.to_dict(), default=str).encode())
    producer.flush()
    producer.close()
    sent = json.loads(json.dumps(chunk.to_dict(), default=str))
    assert "Customer ID" in sent

    want = pd.read_csv(retail_csv, parse_dates=["InvoiceDate"])
    got = read_frame(broker_process, topic, len(want))
    assert got.height == len(want)
    assert got.columns == list(want.columns)
    assert got["InvoiceDate"].dtype == pl.Datetime("us")
    as_pandas = got.to_pandas()
    for name in want.columns:
        assert as_pandas[name].dtype.kind == want[name].dtype.kind, name
    assert want["Customer ID"].isna().any()
    pd.testing.assert_frame_equal(
        as_pandas, want.astype({"InvoiceDate": "datetime64[us]"}), check_dtype=True
    )
    revenue = (
        got.group_by("StockCode")
        .agg((pl.col("Quantity") * pl.col("Price")).sum().alias("revenue"))
        .sort("StockCode")
    )
    want_revenue = (want["Quantity"] * want["Price"]).groupby(want["StockCode"]).sum().sort_index()
    assert revenue["StockCode"].to_list() == list(want_revenue.index)
    np.testing.assert_allclose(revenue["revenue"].to_numpy(), want_revenue.to_numpy())


def test_parsed_timestamps_sent_with_default_str_come_back_as_datetimes(
    broker_process, make_topic, retail_csv
):
    topic = make_topic()
    producer = kafka_python_producer(broker_process)
    for chunk in pd.read_csv(retail_csv, chunksize=100, parse_dates=["InvoiceDate"]):
        producer.send(topic, json.dumps(chunk.to_dict(), default=str).encode())
    producer.flush()
    producer.close()
    want = pd.read_csv(retail_csv, parse_dates=["InvoiceDate"])
    got = read_frame(broker_process, topic, len(want)).to_pandas()
    assert str(got["InvoiceDate"].dtype) == "datetime64[us]"
    assert (got["InvoiceDate"] == want["InvoiceDate"]).all()


def series_tutorial(bootstrap: str, topic: str) -> pd.Series:
    """One temperature reading per message, as ``{timestamp: value}``."""
    index = pd.date_range("2021-01-01 00:00:00", periods=9, freq="s")
    series = pd.Series(60.0 + np.arange(9) / 4, index=index.astype(str))
    series.iloc[3] = np.nan
    producer = kafka_python_producer(bootstrap)
    for label, value in series.items():
        producer.send(topic, json.dumps({label: value}).encode())
    producer.flush()
    producer.close()
    return series


def test_series_maps_are_refused_without_the_orient(broker_process, make_topic):
    topic = make_topic()
    series_tutorial(broker_process, topic)
    with (
        tk.Consumer(broker_process, topics=[topic], offset="earliest") as c,
        pytest.raises(DecodeError) as e,
    ):
        c.poll_frame(timeout=10)
    message = str(e.value)
    assert 'json_orient="index"' in message
    assert f"{topic}[0]@0" in message


def test_series_maps_read_as_rows_with_the_index_orient(broker_process, make_topic):
    topic = make_topic()
    series = series_tutorial(broker_process, topic)
    got = read_frame(broker_process, topic, 9, json_orient="index")
    assert got.columns == ["index", "value"]
    assert got["index"].dtype == pl.Datetime("us")
    assert got["index"].to_list() == list(pd.to_datetime(series.index))
    assert got["value"].is_null().to_list() == list(series.isna())
    assert got["value"].fill_null(-1).to_list() == list(series.fillna(-1))


def sample_frame() -> pd.DataFrame:
    df = retail_frame(25, seed=3).to_pandas()
    df["Customer ID"] = df["Customer ID"].astype("float64")
    return df.drop(columns="row")


@pytest.mark.parametrize("orient", ["records", "columns", "index", "split", "values", "table"])
def test_pandas_to_json_reads_back(broker_process, make_topic, orient):
    topic = make_topic()
    df = sample_frame()
    producer = kafka_python_producer(broker_process)
    for start in range(0, len(df), 10):
        chunk = df.iloc[start : start + 10]
        producer.send(topic, chunk.to_json(orient=orient, date_format="iso").encode())
    producer.flush()
    producer.close()
    got = read_frame(broker_process, topic, len(df), json_orient=orient).to_pandas()
    if orient == "values":
        got.columns = list(df.columns)
    assert len(got) == len(df)
    assert list(got.columns) == list(df.columns)
    for name in ["Invoice", "StockCode", "Description", "Quantity", "Price", "Country"]:
        assert got[name].tolist() == df[name].tolist(), name
    assert got["Customer ID"].isna().tolist() == df["Customer ID"].isna().tolist()
    got_times = pd.to_datetime(got["InvoiceDate"]).dt.tz_localize(None)
    assert got_times.tolist() == df["InvoiceDate"].tolist()


@pytest.mark.parametrize("orient", ["records", "columns", "index", "split", "values", "table"])
def test_tskafka_sends_what_pandas_reads(broker_process, make_topic, orient):
    import confluent_kafka as ck

    topic = make_topic()
    df = sample_frame()
    with tk.Producer(broker_process) as p:
        p.send(topic, df, format="json", json_orient=orient, rows_per_message=10)
    c = ck.Consumer(
        {"bootstrap.servers": broker_process, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    payloads: list[bytes] = []
    while len(payloads) < 3:
        m = c.poll(10)
        assert m is not None and m.error() is None
        payloads.append(m.value())
    c.close()
    from io import StringIO

    # precise_float: pandas' default float parser can be off in the last digit.
    parts = [
        pd.read_json(StringIO(p.decode()), orient=orient, precise_float=True) for p in payloads
    ]
    got = pd.concat(parts)
    assert len(got) == len(df)
    if orient == "values":
        got.columns = list(df.columns)
    if orient not in ("records", "values"):
        # Row labels count the rows sent, as read_csv(chunksize=) does.
        assert list(got.index) == list(range(len(df)))
    for name in ["Quantity", "Price"]:
        assert got[name].tolist() == df[name].tolist(), name
    assert got["Customer ID"].isna().tolist() == df["Customer ID"].isna().tolist()
    assert (
        pd.to_datetime(got["InvoiceDate"]).dt.tz_localize(None).tolist()
        == df["InvoiceDate"].tolist()
    )
    # And tskafka reads it back.
    back = read_frame(broker_process, topic, len(df), json_orient=orient)
    assert back.height == len(df)


def test_to_dict_with_nan_reads_through_pd_dataframe(broker_process, make_topic):
    """tskafka -> Kafka -> pd.DataFrame(json.loads(...)), the to_dict() shape."""
    import confluent_kafka as ck

    topic = make_topic()
    df = sample_frame()
    with tk.Producer(broker_process) as p:
        p.send(topic, df, format="json", json_orient="columns", rows_per_message=25)
    c = ck.Consumer(
        {"bootstrap.servers": broker_process, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    m = c.poll(10)
    c.close()
    got = pd.DataFrame(json.loads(m.value()))
    assert got["Quantity"].tolist() == df["Quantity"].tolist()
    assert got["Customer ID"].isna().tolist() == df["Customer ID"].isna().tolist()
    assert list(got.index) == [str(i) for i in range(25)]


def test_a_wrong_orient_names_the_message_and_the_shape(broker_process, make_topic):
    topic = make_topic()
    with tk.Producer(broker_process) as p:
        p.send(topic, pl.DataFrame({"a": [1, 2]}), format="json")
    with (
        tk.Consumer(broker_process, topics=[topic], offset="earliest", json_orient="split") as c,
        pytest.raises(DecodeError) as e,
    ):
        c.poll_frame(timeout=10)
    assert f"{topic}[0]@0" in str(e.value)
    assert 'json_orient="split" expects' in str(e.value)


def test_bad_orient_names_are_refused(bootstrap):
    with pytest.raises(tk.ConfigError, match="'records', 'columns'"):
        tk.Consumer(bootstrap, json_orient="series")
    with tk.Producer(bootstrap) as p, pytest.raises(tk.ConfigError, match="format='json'"):
        p.send("x", pl.DataFrame({"a": [1]}), json_orient="columns")
