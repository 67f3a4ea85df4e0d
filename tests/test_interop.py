"""Other Kafka clients on the other end: confluent-kafka reads what tskafka
wrote (with plain pyarrow / json), and tskafka reads what they wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import polars as pl
import pyarrow as pa
import pyarrow.ipc
import pytest
from helpers import read_all, retail_frame

import tskafka as tk

confluent = pytest.importorskip("confluent_kafka")


def _drain(bootstrap: str, topic: str, count: int) -> list:
    c = confluent.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"interop-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + 30
    while len(out) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    c.close()
    assert len(out) == count
    return out


def test_confluent_reads_arrow_messages_with_plain_pyarrow(bootstrap, topic):
    df = retail_frame(2_000)
    report = tk.Producer(bootstrap, {"compression.type": "lz4"}).send(
        topic, df, key="StockCode", timestamp="InvoiceDate"
    )
    messages = _drain(bootstrap, topic, report.messages)
    tables = [pyarrow.ipc.open_stream(m.value()).read_all() for m in messages]
    for m, t in zip(messages, tables, strict=True):
        assert set(t.column("StockCode").to_pylist()) == {m.key().decode()}
    back = pl.from_arrow(pa.concat_tables(tables)).sort("row")
    assert back.equals(df)


def test_confluent_reads_json_messages(bootstrap, topic):
    df = retail_frame(300)
    tk.Producer(bootstrap).send(topic, df, format="json", key="Invoice")
    rows = [json.loads(m.value()) for m in _drain(bootstrap, topic, 300)]
    rows.sort(key=lambda r: r["row"])
    assert [r["Quantity"] for r in rows] == df["Quantity"].to_list()
    assert [r["Description"] for r in rows] == df["Description"].to_list()


def test_tskafka_reads_json_that_confluent_wrote(bootstrap, new_topic):
    topic = new_topic(1)
    p = confluent.Producer({"bootstrap.servers": bootstrap})
    for i in range(500):
        row = {
            "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z",
            "value": i * 0.5,
            "n": i,
            "tag": None if i % 7 else "x",
        }
        p.produce(topic, json.dumps(row).encode(), partition=0)
    # the pandas-chunk pattern: a list of records in one message
    p.produce(
        topic,
        json.dumps([{"n": 500, "value": 1.0}, {"n": 501, "value": 2.0}]).encode(),
        partition=0,
    )
    p.flush(10)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 502)
    assert back["n"].dtype == pl.Int64
    assert back["n"].to_list() == list(range(502))
    assert back["value"].dtype == pl.Float64
    assert back["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert back["tag"].null_count() == 502 - len(range(0, 500, 7))


def test_kafka_python_reads_and_writes(bootstrap, new_topic):
    kafka = pytest.importorskip("kafka")
    topic = new_topic(1)
    df = retail_frame(200)
    tk.Producer(bootstrap).send(topic, df, rows_per_message=50)
    consumer = kafka.KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    tables = []
    for m in consumer:
        tables.append(pyarrow.ipc.open_stream(m.value).read_all())
        if sum(t.num_rows for t in tables) >= 200:
            break
    consumer.close()
    assert pl.from_arrow(pa.concat_tables(tables)).sort("row").equals(df)

    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(20):
        producer.send(topic, json.dumps({"n": i}).encode())
    producer.flush(10)
    producer.close()
    with tk.Consumer(bootstrap, partitions=[(topic, 0)], offset="earliest") as c:
        back = read_all(c, 220)
    assert back.filter(pl.col("n").is_not_null())["n"].to_list() == list(range(20))


def _kcat() -> str:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return kcat


def test_kcat_reads_json(bootstrap, topic):
    kcat = _kcat()
    tk.Producer(bootstrap).send(topic, retail_frame(30), format="json", key="StockCode")
    out = subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-f", "%k\t%s\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = [line.split("\t", 1) for line in out.splitlines() if line]
    assert len(lines) == 30
    assert all(json.loads(value)["StockCode"] == key for key, value in lines)


def test_tskafka_reads_json_that_kcat_wrote(bootstrap, new_topic):
    kcat = _kcat()
    topic = new_topic(1)
    lines = "".join(
        f'k{i % 3}\t{{"n": {i}, "value": {i / 4}, "name": "ü{i}"}}\n' for i in range(100)
    )
    subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-P", "-K", "\t"],
        input=lines,
        text=True,
        timeout=60,
        check=True,
    )
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        back = read_all(c, 100).sort("n")
    assert back["n"].to_list() == list(range(100))
    assert back["value"].dtype == pl.Float64
    assert back["name"].to_list() == [f"ü{i}" for i in range(100)]
    assert back["kafka_key"].cast(pl.Utf8).to_list() == [f"k{i % 3}" for i in range(100)]
