"""Topics other producers wrote: CSV lines (the sensor tutorial's own
producer, confluent-kafka in a loop), raw bytes and text (kcat,
kafka-python), read with format='csv' / 'text' / 'raw'; and the same
shapes sent by tskafka (format='csv' | 'text' | 'raw')."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from datetime import datetime, timedelta

import pandas as pd
import polars as pl
import pytest
from helpers import read_all

import tskafka as tk

confluent = pytest.importorskip("confluent_kafka")


def _sensor_lines(n: int) -> list[str]:
    rng = random.Random(7)
    start = datetime(2023, 3, 20, 12, 0, 0, 123456)
    lines = []
    for i in range(n):
        when = start + timedelta(seconds=i, microseconds=rng.randrange(1_000_000))
        temp1 = round(rng.uniform(18.0, 30.0), 2)
        temp2 = rng.randint(15, 35)
        lines.append(f"{when},{temp1},{temp2}")
    return lines


def test_csv_lines_from_the_tutorial_producer(broker_process):
    bootstrap = broker_process
    topic = "sensor-readings"
    tk.Admin(bootstrap).create_topic(topic, partitions=1)
    lines = _sensor_lines(500)
    # The tutorial's producer, as written: one line per message, key "key".
    producer = confluent.Producer({"bootstrap.servers": bootstrap})
    for line in lines:
        producer.produce(topic, key="key", value=line)
    assert producer.flush(10) == 0

    columns = ["timestamp", "temp1", "temp2"]
    consumer = tk.Consumer(
        bootstrap, topics=topic, offset="earliest", format="csv", columns=columns
    )
    try:
        got = read_all(consumer, len(lines))
    finally:
        consumer.close()
    text = "\n".join(lines)
    expected = pl.read_csv(
        io.StringIO(text), has_header=False, new_columns=columns, try_parse_dates=True
    )
    assert got.height == expected.height == len(lines)
    assert got.schema == expected.schema, (got.schema, expected.schema)
    assert got.equals(expected)
    via_pandas = pd.read_csv(io.StringIO(text), names=columns, parse_dates=["timestamp"])
    as_pandas = got.to_pandas()
    assert list(as_pandas.dtypes.astype(str)) == list(via_pandas.dtypes.astype(str))
    assert (
        as_pandas["timestamp"].values == via_pandas["timestamp"].values.astype("datetime64[us]")
    ).all()
    pd.testing.assert_frame_equal(
        as_pandas.drop(columns="timestamp"), via_pandas.drop(columns="timestamp")
    )


def test_csv_header_schema_delimiter_and_several_lines(bootstrap, new_topic):
    topic = new_topic(1)
    producer = confluent.Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topic, value="id;price;when\n1;2.5;2024-01-01 10:00:00\n2;3;2024-01-01 10:00:01"
    )
    producer.produce(topic, value="id;price;when\n3;4.25;2024-01-01 10:00:02")
    producer.flush(10)
    with tk.Consumer(
        bootstrap,
        topics=topic,
        offset="earliest",
        format="csv",
        header=True,
        delimiter=";",
        schema={"id": "str"},
        metadata=True,
    ) as consumer:
        got = read_all(consumer, 3)
    assert got.columns[:3] == ["id", "price", "when"]
    assert got["id"].to_list() == ["1", "2", "3"]
    assert got["price"].dtype == pl.Float64
    assert got["when"].dtype == pl.Datetime("us")
    assert got["kafka_offset"].to_list() == [0, 0, 1]


def _frames_and_errors(consumer: tk.Consumer, rows: int, errors: int) -> tuple[int, list]:
    """Polls until ``rows`` rows and ``errors`` DecodeErrors came, in any order."""
    got, raised = 0, []
    for _ in range(40):
        try:
            frame = consumer.poll_frame(timeout=0.5)
        except tk.DecodeError as e:
            raised.append(e)
            continue
        got += 0 if frame is None else frame.height
        if got >= rows and len(raised) >= errors:
            break
    return got, raised


def test_bad_csv_lines_are_named(bootstrap, new_topic):
    topic = new_topic(1)
    producer = confluent.Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value="2024-01-01 10:00:00,21.5,3")
    producer.flush(10)
    columns = ["timestamp", "temp1", "temp2"]
    with tk.Consumer(
        bootstrap, topics=topic, offset="earliest", format="csv", columns=columns
    ) as consumer:
        # The first frame's types (temp1 a float) hold for the stream.
        assert read_all(consumer, 1)["temp1"].dtype == pl.Float64
        for value in [
            "2024-01-01 10:00:01,22.5",
            "2024-01-01 10:00:02,x,4",
            "2024-01-01 10:00:03,1,5",
        ]:
            producer.produce(topic, value=value)
        producer.flush(10)
        rows, errors = _frames_and_errors(consumer, rows=1, errors=2)
    assert rows == 1
    short, misfit = errors
    assert (short.topic, short.partition, short.offset) == (topic, 0, 1)
    assert "2 fields where 3 columns" in str(short) and "columns=" in str(short)
    assert short.payload == b"2024-01-01 10:00:01,22.5"
    assert misfit.offset == 2
    assert '"x" in column "temp1" is not a number' in str(misfit)
    assert "schema={\"temp1\": 'str'}" in str(misfit)
    # Which frame the types are inferred from depends on how messages arrive:
    # pinned, the misfit is one whatever the timing.
    with tk.Consumer(
        bootstrap,
        topics=topic,
        offset="earliest",
        format="csv",
        columns=columns,
        schema={"temp1": "float64"},
        on_error="skip",
    ) as consumer:
        got = read_all(consumer, 2)
        assert consumer.poll_frame(timeout=1) is None
        assert [b[2] for b in consumer.bad_messages] == [1, 2]
    assert got["temp2"].to_list() == [3, 5]
    with pytest.raises(tk.ConfigError, match="not in columns"):
        tk.Consumer(bootstrap, format="csv", columns=["a"], schema={"b": "int64"})
    with pytest.raises(tk.ConfigError, match="one character"):
        tk.Consumer(bootstrap, format="csv", delimiter=";;")


def _kcat() -> str:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return kcat


def test_raw_and_text_of_kcat_messages(bootstrap, new_topic):
    kcat = _kcat()
    topic = new_topic(1)
    subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-P", "-K", "\t", "-H", "source=kcat"],
        input=b"k1\thello world\nk2\tcaf\xc3\xa9 \xe2\x82\xac\n",
        check=True,
        timeout=30,
    )
    with tk.Consumer(bootstrap, topics=topic, offset="earliest", format="raw") as consumer:
        raw = read_all(consumer, 2)
    assert raw.columns == ["key", "value", "topic", "partition", "offset", "timestamp", "headers"]
    assert raw["key"].to_list() == [b"k1", b"k2"]
    assert raw["value"].to_list() == [b"hello world", "café €".encode()]
    assert raw["offset"].to_list() == [0, 1]
    assert raw["topic"].to_list() == [topic, topic]
    assert raw["headers"][0].to_list() == [{"key": "source", "value": b"kcat"}]
    assert raw["timestamp"].dtype == pl.Datetime("ms", "UTC")
    with tk.Consumer(bootstrap, topics=topic, offset="earliest", format="text") as consumer:
        text = read_all(consumer, 2)
    assert text["value"].to_list() == ["hello world", "café €"]
    assert text["key"].to_list() == ["k1", "k2"]


def test_text_of_kafka_python_messages_and_bad_bytes(bootstrap, new_topic):
    kafka = pytest.importorskip("kafka")
    topic = new_topic(1)
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"plain text")
    producer.send(topic, b"latin-1 caf\xe9", key=b"k")
    producer.send(topic, None, key=b"gone")  # a tombstone
    producer.flush()
    producer.close()
    with tk.Consumer(bootstrap, topics=topic, offset="earliest", format="text") as consumer:
        rows, (error,) = _frames_and_errors(consumer, rows=2, errors=1)
        assert rows == 2
        assert (error.topic, error.partition, error.offset) == (topic, 0, 1)
        assert "not UTF-8" in str(error) and "errors='replace'" in str(error)
        assert error.payload == b"latin-1 caf\xe9"
    with tk.Consumer(
        bootstrap, topics=topic, offset="earliest", format="text", errors="replace"
    ) as consumer:
        got = read_all(consumer, 3)
    assert got["value"].to_list() == ["plain text", "latin-1 caf\ufffd", None]
    with tk.Consumer(bootstrap, topics=topic, offset="earliest", format="raw") as consumer:
        raw = read_all(consumer, 3)
    assert raw["value"].to_list() == [b"plain text", b"latin-1 caf\xe9", None]
    with pytest.raises(tk.ConfigError, match="'strict'"):
        tk.Consumer(bootstrap, format="text", errors="ignore")


def test_raw_copy_is_byte_identical(bootstrap, new_topic):
    source, copy = new_topic(1), new_topic(1)
    producer = confluent.Producer({"bootstrap.servers": bootstrap})
    rng = random.Random(3)
    for i in range(200):
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        key = None if i % 7 == 0 else bytes([i % 256, 0xFF, 0x00])
        producer.produce(source, key=key, value=value, timestamp=1_700_000_000_000 + i * 13)
    producer.flush(10)
    with tk.Consumer(bootstrap, topics=source, offset="earliest", format="raw") as consumer:
        original = read_all(consumer, 200)
    tk.Producer(bootstrap).send(
        copy, original, format="raw", value="value", key="key", timestamp="timestamp"
    )
    with tk.Consumer(bootstrap, topics=copy, offset="earliest", format="raw") as consumer:
        copied = read_all(consumer, 200)
    for column in ["key", "value", "timestamp"]:
        assert copied[column].to_list() == original[column].to_list(), column
    # Re-keyed: the key from another column.
    rekeyed = new_topic(1)
    frame = original.with_columns(pl.col("offset").cast(pl.String).alias("new_key"))
    tk.Producer(bootstrap).send(rekeyed, frame, format="raw", value="value", key="new_key")
    with tk.Consumer(
        bootstrap, topics=rekeyed, offset="earliest", format="text", errors="replace"
    ) as c:
        keys = read_all(c, 200)["key"].to_list()
    assert keys == [str(i) for i in range(200)]


def test_send_csv_and_text_for_consumers_that_split_on_commas(bootstrap, new_topic):
    topic = new_topic(1)
    df = pl.DataFrame(
        {
            "timestamp": [datetime(2023, 3, 20, 12, 0, 0, 123456), datetime(2023, 3, 20, 12, 0, 1)],
            "temp1": [21.5, None],
            "label": ["a,b", 'say "hi"'],
            "temp2": [3, 4],
        }
    )
    report = tk.Producer(bootstrap).send(topic, df, format="csv", key="temp2")
    assert report.messages == 2
    consumer = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "split", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values = []
    try:
        while len(values) < 2:
            m = consumer.poll(10)
            assert m is not None and m.error() is None
            values.append((m.key(), m.value().decode()))
    finally:
        consumer.close()
    assert values == [
        (b"3", '2023-03-20 12:00:00.123456,21.5,"a,b",3'),
        (b"4", '2023-03-20 12:00:01,,"say ""hi""",4'),
    ]
    # tskafka reads back what it wrote, types included.
    with tk.Consumer(
        bootstrap, topics=topic, offset="earliest", format="csv", columns=df.columns
    ) as c:
        back = read_all(c, 2)
    assert back.equals(df)
    lines = new_topic(1)
    tk.Producer(bootstrap).send(lines, df, format="csv", rows_per_message=2)
    texts = new_topic(1)
    tk.Producer(bootstrap).send(texts, df, format="text", value="label")
    with tk.Consumer(bootstrap, topics=lines, offset="earliest", format="text") as c:
        assert read_all(c, 1)["value"].to_list()[0].count("\n") == 1
    with tk.Consumer(bootstrap, topics=texts, offset="earliest", format="text") as c:
        assert read_all(c, 2)["value"].to_list() == ["a,b", 'say "hi"']
    with pytest.raises(tk.TsKafkaError, match="value="):
        tk.Producer(bootstrap).send(texts, df, format="text")
    with pytest.raises(tk.TsKafkaError, match="format='text'"):
        tk.Producer(bootstrap).send(texts, df, format="raw", value="temp2")


def test_replay_as_csv_lines(bootstrap, new_topic):
    topic = new_topic(1)
    df = pl.DataFrame({"when": [datetime(2024, 1, 1, 0, 0, s) for s in range(5)], "v": [1.5] * 5})
    tk.replay(
        df, topic, time_column="when", speed=None, format="csv", bootstrap_servers=bootstrap
    ).wait(30)
    with tk.Consumer(
        bootstrap, topics=topic, offset="earliest", format="csv", columns=["when", "v"]
    ) as c:
        back = read_all(c, 5)
    assert back.equals(df)
