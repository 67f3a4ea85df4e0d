"""A topic as a table: scan_topic, read_topic and TopicSnapshot over a real
broker; pushdown proved by what was fetched (the scan's statistics)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from helpers import retail_frame

import tskafka as tk

UTC = dt.UTC
DATA = [
    "row",
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "Customer ID",
    "Country",
]


@pytest.fixture
def retail_topic(bootstrap, new_topic):
    """3 partitions of a retail frame, 20 rows a message, Kafka timestamps =
    InvoiceDate (the latest of each message's rows), every third row to each
    partition. Not keyed: a keyed send groups each key's rows, so a
    partition's times would go back at each key."""
    topic = new_topic(3)
    sent = retail_frame(3_000)
    producer = tk.Producer(bootstrap)
    for p in range(3):
        part = sent.filter(pl.col("row") % 3 == p)
        producer.send(topic, part, timestamp="InvoiceDate", rows_per_message=20, partition=p)
    return topic, sent


def sorted_data(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(DATA).sort("row")


def test_a_full_scan_is_what_was_sent(bootstrap, retail_topic):
    topic, sent = retail_topic
    got = tk.read_topic(topic, bootstrap)
    assert got.columns == [*DATA, "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key"]
    assert got.schema["kafka_timestamp"] == pl.Datetime("ms", "UTC")
    assert sorted_data(got).equals(sent)
    # Partition by partition, each in offset order.
    assert got["kafka_partition"].is_sorted()
    for _, part in got.group_by("kafka_partition"):
        assert part["kafka_offset"].is_sorted()
    assert got["kafka_key"].is_null().all()
    lazy = tk.scan_topic(topic, bootstrap).collect()
    assert sorted_data(lazy).equals(sent)
    table = tk.read_topic(topic, bootstrap, output="pyarrow")
    assert isinstance(table, pa.Table) and table.num_rows == sent.height


def test_a_time_window_fetches_only_its_messages(bootstrap, retail_topic):
    topic, sent = retail_topic
    start, end = dt.datetime(2009, 12, 2, 10), dt.datetime(2009, 12, 2, 14)
    stats = tk.ScanStats()
    lazy = tk.scan_topic(topic, bootstrap, time_column="InvoiceDate", stats=stats)
    got = lazy.filter(pl.col("InvoiceDate").is_between(start, end, closed="left")).collect()
    expected = sent.filter(pl.col("InvoiceDate").is_between(start, end, closed="left"))
    assert expected.height > 100
    assert sorted_data(got).equals(expected)
    assert stats.pushdown is not None and stats.pushdown.row_start_ms is not None
    whole = tk.TopicSnapshot(topic, bootstrap)
    total = sum(e - s for s, e in whole.ranges.values())
    # Per partition the messages holding the window's rows, and the one after.
    assert stats.messages <= expected.height // 20 + 3 * 3, (stats.messages, total)
    assert stats.messages < total / 5

    # On the Kafka timestamps: exactly the messages in the window.
    at = pl.col("kafka_timestamp")
    t0, t1 = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    by_ts = tk.scan_topic(topic, bootstrap, stats=stats).filter(at >= t0, at < t1).collect()
    all_rows = tk.read_topic(topic, bootstrap)
    assert sorted_data(by_ts).equals(sorted_data(all_rows.filter(at >= t0, at < t1)))
    in_window = all_rows.filter(at >= t0, at < t1).select(["kafka_partition", "kafka_offset"])
    assert stats.messages == in_window.unique().height
    # The eager form with start/end fetches the same.
    snap = tk.TopicSnapshot(topic, bootstrap, start=start, end=end)
    assert sorted_data(snap.to_polars()).equals(sorted_data(by_ts))
    assert snap.stats.messages == stats.messages


def test_a_partition_filter_fetches_only_that_partition(bootstrap, retail_topic):
    topic, _ = retail_topic
    every = tk.read_topic(topic, bootstrap)
    stats = tk.ScanStats()
    lazy = tk.scan_topic(topic, bootstrap, stats=stats)
    one = lazy.filter(pl.col("kafka_partition") == 1).collect()
    assert set(stats.partitions) == {1}
    assert one.height == every.filter(pl.col("kafka_partition") == 1).height > 0
    two = lazy.filter(pl.col("kafka_partition").is_in([0, 2]), pl.col("Quantity") > 0).collect()
    assert set(stats.partitions) == {0, 2}
    expected = every.filter(pl.col("kafka_partition").is_in([0, 2]), pl.col("Quantity") > 0)
    assert sorted_data(two).equals(sorted_data(expected))
    assert lazy.filter(pl.col("kafka_partition") == 7).collect().height == 0
    assert stats.messages == 0
    with pytest.raises(tk.ConfigError, match="partition 5 does not exist"):
        tk.read_topic(topic, bootstrap, partitions=[5])


def test_head_stops_fetching(bootstrap, retail_topic):
    topic, _ = retail_topic
    stats = tk.ScanStats()
    whole = tk.TopicSnapshot(topic, bootstrap)
    total = sum(e - s for s, e in whole.ranges.values())
    head = tk.scan_topic(topic, bootstrap, stats=stats).head(30).collect()
    assert head.height == 30
    # Each thread stops once 30 rows were read: a few 20-row messages at most.
    assert 2 <= stats.messages <= 2 * 3, stats.messages
    assert stats.messages < total
    # Polars passes no row limit through a filter on data columns; its
    # streaming engine stops pulling batches once it has the rows.
    filtered = (
        tk.scan_topic(topic, bootstrap, stats=stats)
        .filter(pl.col("Quantity") > 0)
        .head(30)
        .collect(engine="streaming")
    )
    assert filtered.height == 30 and (filtered["Quantity"] > 0).all()
    assert stats.messages < total / 2
    limited = tk.read_topic(topic, bootstrap, limit=25)
    assert limited.height == 25


def test_an_offset_range(bootstrap, retail_topic):
    topic, _ = retail_topic
    got = tk.read_topic(topic, bootstrap, partitions=[0], offsets=(5, 10))
    assert got["kafka_offset"].unique().sort().to_list() == [5, 6, 7, 8, 9]
    assert (got["kafka_partition"] == 0).all()
    stats = tk.ScanStats()
    lazy = tk.scan_topic(topic, bootstrap, stats=stats)
    picked = lazy.filter(pl.col("kafka_offset").is_between(3, 4)).collect()
    assert stats.messages == 2 * 3
    assert sorted(set(picked["kafka_offset"].to_list())) == [3, 4]
    lazy.filter(pl.col("kafka_offset") >= 1_000_000).collect()
    assert stats.messages == 0


def test_duckdb_pyarrow_and_polars_read_a_snapshot(bootstrap, retail_topic):
    topic, sent = retail_topic
    snap = tk.TopicSnapshot(topic, bootstrap)
    [(n, quantity)] = duckdb.sql('SELECT count(*), sum("Quantity") FROM snap').fetchall()
    assert (n, quantity) == (sent.height, sent["Quantity"].sum())
    by_code = duckdb.sql(
        'SELECT "StockCode", sum("Quantity") AS q FROM snap GROUP BY 1 ORDER BY 1'
    ).pl()
    expected = sent.group_by("StockCode").agg(q=pl.col("Quantity").sum()).sort("StockCode")
    assert by_code["q"].to_list() == expected["q"].to_list()
    assert pa.table(snap).num_rows == sent.height
    assert sorted_data(pl.DataFrame(snap)).equals(sent)
    assert snap.stats.runs >= 3


def test_an_empty_topic(bootstrap, new_topic):
    topic = new_topic(2)
    got = tk.read_topic(topic, bootstrap)
    assert got.height == 0
    assert got.columns == ["kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key"]
    lazy = tk.scan_topic(topic, bootstrap)
    assert lazy.collect_schema().names() == got.columns
    assert lazy.collect().height == 0
    given = tk.scan_topic(topic, bootstrap, schema={"x": pl.Int64}).collect()
    assert given.columns[0] == "x" and given.height == 0
    assert pa.table(tk.TopicSnapshot(topic, bootstrap)).num_rows == 0


def test_an_unknown_topic_is_a_clear_error(strict_bootstrap):
    with pytest.raises(tk.KafkaError, match="does not exist") as e:
        tk.read_topic("no-such-topic", strict_bootstrap)
    assert e.value.code == "UnknownTopicOrPartition"
    with pytest.raises(tk.KafkaError, match="does not exist"):
        tk.scan_topic("no-such-topic", strict_bootstrap).collect()


def test_list_offsets_by_time_as_kafka_answers(bootstrap, new_topic):
    ck = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for i, ts in enumerate([1_000, 2_000, 2_000, 3_000]):
        p.produce(topic, value=f'{{"i": {i}}}'.encode(), partition=0, timestamp=ts)
    p.flush(10)
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-for-times"})
    try:
        for at, expected in [
            (0, 0),
            (1_000, 0),
            (1_500, 1),
            (2_000, 1),
            (2_001, 3),
            (3_000, 3),
            (3_001, -1),
        ]:
            found = c.offsets_for_times([ck.TopicPartition(topic, 0, at)], timeout=10)
            assert found[0].offset == expected, (at, found[0])
    finally:
        c.close()
    stats = tk.ScanStats()
    lazy = tk.scan_topic(topic, bootstrap, stats=stats)
    ms = dt.timedelta(milliseconds=1)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    late = lazy.filter(pl.col("kafka_timestamp") >= epoch + 2_001 * ms).collect()
    assert late["i"].to_list() == [3] and stats.messages == 1
    middle = lazy.filter(pl.col("kafka_timestamp") == epoch + 2_000 * ms).collect()
    assert middle["i"].to_list() == [1, 2] and stats.messages == 2
    past = lazy.filter(pl.col("kafka_timestamp") > epoch + 3_000 * ms).collect()
    assert past.height == 0 and stats.messages == 0


def test_cli_since_until_writes_the_window(bootstrap, retail_topic, tmp_path):
    topic, sent = retail_topic
    out = tmp_path / "window.parquet"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tskafka",
            "consume",
            topic,
            "-b",
            bootstrap,
            "--since",
            "2009-12-02T10:00",
            "--until",
            "2009-12-02T14:00",
            "--time-column",
            "InvoiceDate",
            "--out",
            str(out),
            "--quiet",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TSKAFKA_BOOTSTRAP": ""},
    )
    assert r.returncode == 0, r.stderr
    expected = sent.filter(
        pl.col("InvoiceDate").is_between(
            dt.datetime(2009, 12, 2, 10), dt.datetime(2009, 12, 2, 14), closed="left"
        )
    )
    got = pl.read_parquet(out)
    assert sorted_data(got).equals(expected)
    assert f"consumed {expected.height:,} rows" in r.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "tskafka",
            "consume",
            topic,
            "-b",
            bootstrap,
            "--since",
            "yesterday",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--since expects an ISO date" in bad.stderr


def test_the_predicate_reader_pushes_only_what_it_understands():
    from tskafka.scan import pushdown

    t = dt.datetime(2011, 3, 1, tzinfo=UTC)
    p = pushdown(pl.col("kafka_timestamp").is_between(t, t + dt.timedelta(days=7)))
    assert (p.start_ms, p.end_ms) == (1_298_937_600_000, 1_299_542_400_001)
    p = pushdown((pl.col("kafka_timestamp") > t) & (pl.col("kafka_offset") < 10))
    assert (p.start_ms, p.end_offset) == (1_298_937_600_001, 10)
    assert pushdown(pl.lit(5) <= pl.col("kafka_offset")).start_offset == 5
    # OR, NOT, and data columns push nothing down.
    either = (pl.col("kafka_partition") == 1) | (pl.col("kafka_partition") == 2)
    assert pushdown(either) == tk.scan.Pushdown()
    assert pushdown(~(pl.col("kafka_partition") == 1)) == tk.scan.Pushdown()
    assert pushdown(pl.col("x") > 3) == tk.scan.Pushdown()
    assert pushdown(None) == tk.scan.Pushdown()


@pytest.fixture(scope="module")
def registry_broker():
    """A broker with a Schema Registry, for the Avro and JSON Schema topics."""
    pytest.importorskip("fastavro")
    with tk.LocalBroker(schema_registry=True) as b:
        yield b


@pytest.mark.parametrize(
    ("format", "send"),
    [
        ("arrow", {}),
        ("json", {}),
        ("json", {"schema_header": True}),
        ("csv", {}),
        ("avro", {}),
        ("json_schema", {}),
    ],
)
def test_a_selection_reads_what_decoding_everything_then_selecting_reads(
    registry_broker, format, send
):
    """The selected columns reach the decoders (Arrow IPC skips buffers, JSON
    and Avro skip fields): the answer is the one a full read then a select
    gives, for every format, also for a filter on a column not selected."""
    bootstrap = registry_broker.bootstrap_servers
    config = {"schema.registry.url": registry_broker.schema_registry_url}
    topic = f"select-{format}-{len(send)}"
    tk.Admin(bootstrap).create_topic(topic, partitions=2)
    # Over 1,000 JSON rows per run: types inferred from a sample, then checked.
    sent = retail_frame(3_000)
    tk.Producer(bootstrap, config).send(topic, sent, format=format, rows_per_message=1, **send)
    full = tk.read_topic(topic, bootstrap, config, format=format)
    assert full.height == sent.height
    data = [c for c in full.columns if not c.startswith("kafka_")]
    quantity, text = data[4], data[3]  # Quantity and Description (CSV: column_5, column_4)
    for columns in [[quantity], [text, "kafka_offset"], ["kafka_partition"], data[::-1]]:
        got = tk.read_topic(topic, bootstrap, config, format=format, columns=columns)
        assert got.equals(full.select([c for c in full.columns if c in columns])), columns
    lazy = tk.scan_topic(topic, bootstrap, config, format=format)
    picked = lazy.filter(pl.col(quantity) > 0).select(text, "kafka_offset").collect()
    expected = full.filter(pl.col(quantity) > 0).select(text, "kafka_offset")
    assert picked.sort("kafka_offset", text).equals(expected.sort("kafka_offset", text))


def test_a_csv_selection_types_only_its_columns(bootstrap, new_topic):
    """CSV lines: a selection splits out and types only its columns, with the
    values a full read gives them; a value a column left out cannot hold is
    not read, and a line of the wrong width is an error all the same."""
    topic = new_topic(1)
    rows = 150_000  # over one frame (100,000 rows): the first frame pins the types
    lines = [f"{i},{i / 2},code {i % 7}" for i in range(rows)]
    lines[-1] = f"not a number,{(rows - 1) / 2},code x"
    # 1,000 lines a message: the last one (offset 149) holds the line column_1 cannot.
    tk.Producer(bootstrap).send(
        topic, pl.DataFrame({"value": lines}), format="text", rows_per_message=1_000
    )
    with pytest.raises(
        tk.DecodeError, match=rf'{topic}\[0\]@149: .*"not a number" in column "column_1"'
    ):
        tk.read_topic(topic, bootstrap, format="csv")
    full = tk.read_topic(topic, bootstrap, format="csv", on_error="skip")
    assert full.height == rows - 1_000
    wanted = ["column_3", "column_2"]
    got = tk.read_topic(topic, bootstrap, format="csv", columns=wanted)
    assert got.columns == ["column_2", "column_3"] and got.height == rows
    assert got.head(full.height).equals(full.select(got.columns))
    assert got.row(-1) == ((rows - 1) / 2, "code x")
    lazy = tk.scan_topic(topic, bootstrap, format="csv", on_error="skip")
    assert lazy.select("column_3").collect().equals(got.select("column_3"))

    narrow = new_topic(1)
    tk.Producer(bootstrap).send(narrow, pl.DataFrame({"value": ["1,2,a", "3,4"]}), format="text")
    with pytest.raises(tk.DecodeError, match=rf"{narrow}\[0\]@1: .*2 fields where 3 columns"):
        tk.read_topic(narrow, bootstrap, format="csv", columns=["column_1"])


def test_headers_as_a_column(bootstrap, new_topic):
    ck = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    p = ck.Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, b'{"a": 1}', headers=[("trace", b"t-1"), ("empty", None), ("trace", b"t-2")])
    p.produce(topic, b'{"a": 2}')
    p.produce(topic, b'[{"a": 3}, {"a": 4}]', headers=[("batch", "yes")])
    assert p.flush(10) == 0

    def pairs(*items):
        return [{"key": k, "value": v} for k, v in items]

    expected = [
        pairs(("trace", b"t-1"), ("empty", None), ("trace", b"t-2")),
        [],
        pairs(("batch", b"yes")),
        pairs(("batch", b"yes")),
    ]
    got = tk.read_topic(topic, bootstrap, headers=True)
    assert got.columns == ["a", *tk.scan.METADATA_COLUMNS, "kafka_headers"]
    assert got.schema["kafka_headers"] == pl.List(pl.Struct({"key": pl.String, "value": pl.Binary}))
    assert got["kafka_headers"].to_list() == expected
    assert "kafka_headers" not in tk.read_topic(topic, bootstrap).columns
    lazy = tk.scan_topic(topic, bootstrap, headers=True)
    assert lazy.collect_schema()["kafka_headers"] == got.schema["kafka_headers"]
    assert lazy.select("kafka_headers").collect()["kafka_headers"].to_list() == expected
    assert lazy.select("a").collect()["a"].to_list() == [1, 2, 3, 4]
    table = pa.table(tk.TopicSnapshot(topic, bootstrap, headers=True))
    assert table.schema.field("kafka_headers").type == tk.scan.HEADERS_TYPE
    # A raw read has them as the Consumer's raw frames do: the same values, one row a message.
    raw = tk.read_topic(topic, bootstrap, format="raw")
    assert raw["headers"].to_list() == expected[:3]
    assert raw.schema["headers"] == got.schema["kafka_headers"]
    empty = tk.read_topic(new_topic(1), bootstrap, headers=True)
    assert empty.height == 0 and empty.schema["kafka_headers"] == got.schema["kafka_headers"]


def test_a_start_time_is_exact_when_timestamps_go_back(bootstrap, new_topic):
    """Kafka answers a time with the first offset at or after it, so a start
    bound misses nothing whatever the order; only an end bound assumes order
    (and warns when the rows read show it going back)."""
    import warnings

    ck = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    p = ck.Producer({"bootstrap.servers": bootstrap})
    times = [1_000, 3_000, 2_000, 4_000, 1_500, 5_000]
    for i, ts in enumerate(times):
        p.produce(topic, value=f'{{"i": {i}}}'.encode(), partition=0, timestamp=ts)
    assert p.flush(10) == 0
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    at = pl.col("kafka_timestamp")
    stats = tk.ScanStats()
    lazy = tk.scan_topic(topic, bootstrap, stats=stats)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        late = lazy.filter(at >= epoch + dt.timedelta(milliseconds=2_000)).collect()
    assert late["i"].to_list() == [1, 2, 3, 5]
    assert stats.messages == 5  # from offset 1, the first at or after 2,000 ms
    with pytest.warns(UserWarning, match="end time looked up as an offset"):
        lazy.filter(at < epoch + dt.timedelta(milliseconds=4_500)).collect()
    # Read whole, the partition may be read in pieces: still seen going back.
    with pytest.warns(UserWarning, match="end time looked up as an offset"):
        tk.read_topic(topic, bootstrap, end=epoch + dt.timedelta(milliseconds=4_500))


def test_a_partition_read_in_pieces_comes_back_whole_and_in_order(bootstrap, new_topic):
    """A read collected whole cuts a partition the cores could share into
    runs of offsets, read on threads of their own: every row comes back
    once, in offset order, as a Consumer reads it."""
    topic = new_topic(1)
    sent = pl.DataFrame({"n": range(60_000), "text": [f"row {i}" for i in range(60_000)]})
    tk.Producer(bootstrap).send(topic, sent, rows_per_message=600)
    snap = tk.TopicSnapshot(topic, bootstrap)
    got = snap.to_polars()
    assert got.select("n", "text").equals(sent)
    assert got["kafka_offset"].is_sorted() and got["kafka_offset"].n_unique() == 100
    partition = snap.stats.partitions[0]
    assert partition["done"] and partition["messages"] == 100
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert partition["pieces"] > 1 or cores == 1
    assert pa.table(snap).to_pydict()["n"] == list(range(60_000))
    # Frames handed out as they come keep the partition whole.
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        polled = c.poll_frame(max_rows=60_000, timeout=10)
    assert polled.equals(tk.scan_topic(topic, bootstrap).select("n", "text").collect())


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_as_librdkafka_writes_them(bootstrap, new_topic, compression):
    ck = pytest.importorskip("confluent_kafka")
    topic = new_topic(2)
    p = ck.Producer(
        {"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 50}
    )
    for i in range(2_000):
        key = None if i % 7 == 0 else f"k{i % 5}".encode()
        headers = [("h", f"{i}".encode())] if i % 2 else None
        p.produce(
            topic,
            value=f'{{"i": {i}, "s": "{"x" * (i % 30)}"}}'.encode(),
            key=key,
            partition=i % 2,
            timestamp=1_000 + i,
            headers=headers,
        )
    p.flush(10)
    got = tk.read_topic(topic, bootstrap, format="json", headers=True).sort("i")
    assert got["i"].to_list() == list(range(2_000))
    assert got["s"].to_list() == ["x" * (i % 30) for i in range(2_000)]
    assert got["kafka_partition"].to_list() == [i % 2 for i in range(2_000)]
    assert got["kafka_key"].to_list() == [None if i % 7 == 0 else f"k{i % 5}" for i in range(2_000)]
    ms = got["kafka_timestamp"].dt.epoch("ms").to_list()
    assert ms == [1_000 + i for i in range(2_000)]
    headers = got["kafka_headers"].to_list()
    assert headers[3] == [{"key": "h", "value": b"3"}] and headers[4] == []
    # A window inside the batches: only its records come back.
    window = tk.read_topic(topic, bootstrap, format="json", start=1_500, end=1_600)
    assert sorted(window["i"].to_list()) == list(range(500, 600))


def test_csv_lines_with_the_consumers_options(bootstrap, new_topic):
    """The tutorial's CSV lines (key "key"), read with names, as the Consumer
    reads them; columns= selects, as in Polars."""
    ck = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    p = ck.Producer({"bootstrap.servers": bootstrap})
    lines = [f"2023-03-20 12:00:{i % 60:02d}.123456;{20 + i / 10};{i}" for i in range(300)]
    for line in lines:
        p.produce(topic, key="key", value=line)
    p.flush(10)
    names = ["timestamp", "temp1", "n"]
    got = tk.read_topic(topic, bootstrap, format="csv", new_columns=names, delimiter=";")
    with tk.Consumer(
        bootstrap,
        partitions=[(topic, 0)],
        offset="earliest",
        format="csv",
        columns=names,
        delimiter=";",
    ) as c:
        expected = c.poll_frame(max_rows=300, timeout=10)
    assert got.select(names).equals(expected)
    assert got.schema["timestamp"] == pl.Datetime("us") and got["n"].to_list() == list(range(300))
    one = tk.read_topic(
        topic, bootstrap, format="csv", new_columns=names, delimiter=";", columns=["temp1"]
    )
    assert one.columns == ["temp1"] and one["temp1"].equals(expected["temp1"])
    pinned = tk.read_topic(
        topic, bootstrap, format="csv", new_columns=names, delimiter=";", schema={"n": "str"}
    )
    assert pinned["n"].to_list() == [str(i) for i in range(300)]
    lazy = tk.scan_topic(topic, bootstrap, format="csv", new_columns=names, delimiter=";")
    assert lazy.filter(pl.col("n") < 3).select("n").collect()["n"].to_list() == [0, 1, 2]


def test_an_unreachable_cluster_is_named_within_the_timeout():
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(tk.KafkaError, match="could not reach the Kafka cluster") as e:
        tk.read_topic("t", f"127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - started < 5
    assert e.value.retriable and str(port) in str(e.value)
