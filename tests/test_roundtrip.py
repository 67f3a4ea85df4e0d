"""Frames through a real broker and back, in both formats and every frame library."""

from __future__ import annotations

import datetime as dt
import zlib

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from helpers import as_plain_json, read_all, retail_frame

import tskafka as tk


@pytest.mark.parametrize("fmt", ["arrow", "json"])
@pytest.mark.parametrize("kind", ["polars", "pyarrow", "pandas"])
def test_retail_frame_round_trips_exactly(bootstrap, topic, fmt, kind):
    df = retail_frame(3_000)
    data = {"polars": df, "pyarrow": df.to_arrow(), "pandas": df.to_pandas()}[kind]
    per_message = 700 if fmt == "arrow" else None  # json: one row per message
    # JSON carries its exact types only with the schema header (plain JSON: below).
    report = tk.Producer(bootstrap).send(
        topic, data, format=fmt, rows_per_message=per_message, schema_header=fmt == "json"
    )
    assert (report.rows, report.rows_pending) == (3_000, 0)
    assert report.messages == (5 if fmt == "arrow" else 3_000)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 3_000).sort("row")
    expected = pl.from_pandas(data) if kind == "pandas" else df
    if kind == "pandas":
        # pandas holds the nullable ints as float64 and the strings as objects.
        assert back.schema["Customer ID"] == pl.Float64
    assert back.columns == expected.columns
    assert back.equals(expected), (back.head(3), expected.head(3))


def test_plain_json_reads_back_by_inference(bootstrap, topic):
    df = retail_frame(3_000)
    report = tk.Producer(bootstrap).send(topic, df, format="json")
    assert (report.rows, report.messages) == (3_000, 3_000)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 3_000).sort("row")
    # Same columns in the same order, same values; the naive InvoiceDate,
    # written in UTC, comes back labelled UTC.
    assert back.schema["InvoiceDate"] == pl.Datetime("us", "UTC")
    assert back.schema["Customer ID"] == pl.Int64
    assert back.equals(as_plain_json(df))


def test_json_messages_are_plain_json_with_types(bootstrap, topic):
    confluent = pytest.importorskip("confluent_kafka")
    import json

    df = retail_frame(50)
    tk.Producer(bootstrap).send(topic, df, format="json")
    c = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "raw", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    rows = []
    while len(rows) < 50:
        m = c.poll(5)
        assert m is not None, "confluent-kafka got no message"
        assert m.error() is None, m.error()
        assert m.headers() is None
        rows.append(json.loads(m.value()))
    c.close()
    rows.sort(key=lambda r: r["row"])
    first = rows[0]
    assert isinstance(first["Quantity"], int)
    assert isinstance(first["Price"], float)
    assert first["InvoiceDate"] == "2009-12-01T07:45:00Z"
    assert any(r["Customer ID"] is None for r in rows)
    assert "NaN" not in json.dumps(rows)


def test_nan_and_infinity_become_null_in_json(bootstrap, topic):
    df = pl.DataFrame({"x": [1.5, float("nan"), float("inf")]})
    tk.Producer(bootstrap).send(topic, df, format="json", partition=0)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 3)
    assert back["x"].to_list() == [1.5, None, None]


def test_keys_land_in_the_partition_they_hash_to(bootstrap, new_topic):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(3)
    df = retail_frame(600)
    tk.Producer(bootstrap).send(topic, df, key="StockCode", format="arrow")
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        back = read_all(c, 600)
    assert back["kafka_key"].to_list() == back["StockCode"].to_list()
    placed = dict(back.select("StockCode", "kafka_partition").unique().iter_rows())
    assert len(placed) == back["StockCode"].n_unique()  # one partition per key
    # librdkafka's default partitioner: CRC32 of the key, as confluent-kafka uses too.
    for code, partition in placed.items():
        assert partition == zlib.crc32(code.encode()) % 3
    seen = {}
    p = confluent.Producer({"bootstrap.servers": bootstrap})
    for code in placed:
        p.produce(
            topic,
            b"{}",
            key=code,
            on_delivery=lambda e, m: seen.__setitem__(m.key().decode(), m.partition()),
        )
    p.flush(10)
    assert seen == placed


def test_several_key_columns_and_json_keys(bootstrap, topic):
    df = retail_frame(100)
    tk.Producer(bootstrap).send(topic, df, key=["Country", "StockCode"], format="json")
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        back = read_all(c, 100)
    expected = back["Country"] + "|" + back["StockCode"]
    assert back["kafka_key"].to_list() == expected.to_list()


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_event_time_becomes_the_kafka_timestamp(bootstrap, topic, fmt):
    df = retail_frame(500)
    per_message = 100 if fmt == "arrow" else 1
    tk.Producer(bootstrap).send(
        topic, df, timestamp="InvoiceDate", format=fmt, rows_per_message=per_message, partition=1
    )
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        back = read_all(c, 500).sort("row")
    event = back["InvoiceDate"].dt.replace_time_zone("UTC").dt.cast_time_unit("ms")
    if fmt == "json":
        assert (back["kafka_timestamp"] == event).all()
    else:
        # One timestamp per message: the latest event time in it.
        latest = (
            event.to_frame("e")
            .with_columns(g=pl.int_range(500) // 100)
            .group_by("g")
            .agg(pl.max("e"))
        )
        per_message = (
            back.with_columns(g=pl.int_range(500) // 100)
            .group_by("g")
            .agg(pl.first("kafka_timestamp"))
        )
        assert latest.sort("g")["e"].to_list() == per_message.sort("g")["kafka_timestamp"].to_list()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(bootstrap, topic, codec):
    df = retail_frame(1_000)
    report = tk.Producer(bootstrap, {"compression.type": codec}).send(
        topic, df, rows_per_message=250
    )
    assert report.rows == 1_000
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert read_all(c, 1_000).sort("row").equals(df)


def test_headers_reach_other_clients(bootstrap, topic):
    confluent = pytest.importorskip("confluent_kafka")
    tk.Producer(bootstrap).send(
        topic, retail_frame(10), headers={"source": "unit-test", "b": b"\x00\x01"}
    )
    c = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "h", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    m = None
    for _ in range(50):
        m = c.poll(0.5)
        if m is not None:
            break
    c.close()
    assert m is not None and m.error() is None
    assert dict(m.headers()) == {"source": b"unit-test", "b": b"\x00\x01"}


@pytest.mark.parametrize("output", ["pyarrow", "pandas"])
def test_output_kinds(bootstrap, topic, output):
    df = retail_frame(100)
    tk.Producer(bootstrap).send(topic, df)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", output=output) as c:
        frame = None
        for _ in range(40):
            frame = c.poll_frame(timeout=0.5)
            if frame is not None:
                break
    assert frame is not None
    if output == "pyarrow":
        assert isinstance(frame, pa.Table)
        assert frame.num_rows == 100
    else:
        assert isinstance(frame, pd.DataFrame)
        assert len(frame) == 100


def test_iteration_and_schema_union(bootstrap, new_topic):
    topic = new_topic(1)
    p = tk.Producer(bootstrap)
    p.send(topic, pl.DataFrame({"a": [1, 2]}))
    p.send(topic, pl.DataFrame({"a": [3], "b": ["x"]}))
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        frame = next(iter(c))
    # Both messages were stored before the consumer joined, so they arrive
    # together and make one frame: the union of their columns, b null where
    # the first message had none.
    assert frame.schema == pl.Schema({"a": pl.Int64, "b": pl.String})
    assert frame.rows(named=True) == [
        {"a": 1, "b": None},
        {"a": 2, "b": None},
        {"a": 3, "b": "x"},
    ]


def test_a_column_that_changes_type_starts_a_new_frame(bootstrap, new_topic):
    topic = new_topic(1)
    p = tk.Producer(bootstrap)
    p.send(topic, pl.DataFrame({"a": [1, 2]}))
    p.send(topic, pl.DataFrame({"a": ["one"]}))
    p.send(topic, pl.DataFrame({"a": [3]}))
    frames = []
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", auto_commit=False) as c:
        while sum(len(f) for f in frames) < 4:
            frame = c.poll_frame(timeout=5)
            assert frame is not None
            frames.append(frame)
        c.commit()
        assert c.committed() == {(topic, 0): 3}
    assert [(f.schema["a"], f["a"].to_list()) for f in frames] == [
        (pl.Int64, [1, 2]),
        (pl.String, ["one"]),
        (pl.Int64, [3]),
    ]


def test_wait_false_then_flush(bootstrap, topic):
    p = tk.Producer(bootstrap)
    first = p.send(topic, retail_frame(1_000), wait=False, rows_per_message=100)
    assert first.rows + first.rows_pending == 1_000
    p.send(topic, retail_frame(500), wait=False)
    total = p.flush(timeout=30)
    assert (total.rows, total.rows_pending) == (1_500, 0)
    assert p.in_flight == 0


@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_a_full_local_queue_waits_and_delivers_every_row_in_order(bootstrap, new_topic, fmt):
    """A local queue of 50 messages fills many times over: the send waits,
    queues the rest, and every row arrives once, in order within its key."""
    topic = new_topic(partitions=3)
    p = tk.Producer(bootstrap, {"queue.buffering.max.messages": 50})
    df = pl.DataFrame({"k": [f"key{i % 7}" for i in range(5_000)], "i": range(5_000)})
    report = p.send(topic, df, format=fmt, key="k", rows_per_message=1 if fmt == "json" else 10)
    assert (report.rows, report.rows_pending) == (5_000, 0)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 5_000)
    assert sorted(back["i"].to_list()) == list(range(5_000))
    for _, rows in back.group_by("k"):
        assert rows["i"].to_list() == sorted(rows["i"].to_list())


def test_datetimes_with_zones_and_dates(bootstrap, topic):
    df = pl.DataFrame(
        {
            "at": [dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC)],
            "day": [dt.date(2024, 3, 31)],
            "flag": [True],
            "small": pl.Series([7], dtype=pl.Int16),
            "cat": pl.Series(["a"], dtype=pl.Categorical),
        }
    ).with_columns(pl.col("at").dt.convert_time_zone("Europe/London"))
    tk.Producer(bootstrap).send(topic, df, format="json", schema_header=True)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 1)
    assert back["at"].dtype == pl.Datetime("us", "Europe/London")
    assert back["at"][0] == df["at"][0]
    assert back["day"][0] == dt.date(2024, 3, 31)
    assert back["small"].dtype == pl.Int16
    assert back["cat"].cast(pl.Utf8).to_list() == ["a"]


def test_the_whole_retail_log_goes_through(bootstrap, new_topic):
    from tskafka import datasets

    topic = new_topic(3)
    retail = datasets.online_retail()
    assert retail.height == 1_067_371
    report = tk.Producer(bootstrap, {"compression.type": "lz4"}).send(
        topic, retail, key="StockCode", timestamp="InvoiceDate"
    )
    assert report.rows == retail.height
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, retail.height, timeout=120)
    assert back.height == retail.height
    revenue = (pl.col("Quantity") * pl.col("Price")).sum()
    assert back.select(revenue).item() == pytest.approx(retail.select(revenue).item())
    assert back.sort("InvoiceDate", "StockCode", "Invoice", "Quantity").equals(
        retail.sort("InvoiceDate", "StockCode", "Invoice", "Quantity")
    )


def test_json_arrays_of_rows(bootstrap, topic):
    import json

    df = retail_frame(1_000)
    report = tk.Producer(bootstrap).send(
        topic, df, format="json", rows_per_message=100, key="Country"
    )
    assert report.rows == 1_000
    assert report.messages >= 10
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 1_000).sort("row")
    assert back.equals(as_plain_json(df))
    confluent = pytest.importorskip("confluent_kafka")
    cc = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "arr", "auto.offset.reset": "earliest"}
    )
    cc.subscribe([topic])
    m = None
    while m is None:
        m = cc.poll(5)
    cc.close()
    records = json.loads(m.value())
    assert isinstance(records, list) and {r["Country"] for r in records} == {m.key().decode()}


def test_close_waits_for_rows_in_flight(bootstrap, topic):
    p = tk.Producer(bootstrap)
    p.send(topic, retail_frame(2_000), wait=False, format="json")
    p.close(timeout=30)
    assert p.closed
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert len(read_all(c, 2_000)) == 2_000
