"""Avro and JSON Schema through a Schema Registry, against confluent-kafka's
own SchemaRegistryClient, AvroSerializer/AvroDeserializer and
JSONSerializer/JSONDeserializer on the embedded broker and registry, both
ways; and every error a reader or sender can meet."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import socket
import time
import uuid
import warnings

import polars as pl
import pytest

import tskafka as tk

pytest.importorskip("fastavro")
pytest.importorskip("authlib")
pytest.importorskip("jsonschema")
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

PASSWORD = "avro-pw-5d1e0b-sentinel"

SALE = {
    "type": "record",
    "name": "Sale",
    "namespace": "shop",
    "fields": [
        {"name": "invoice", "type": "long"},
        {"name": "qty", "type": "int"},
        {"name": "price", "type": "double"},
        {"name": "country", "type": "string"},
        {"name": "customer", "type": ["null", "long"], "default": None},
        {
            "name": "channel",
            "type": {"type": "enum", "name": "Channel", "symbols": ["WEB", "SHOP"]},
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "extra", "type": {"type": "map", "values": "int"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
        {
            "name": "address",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Address",
                    "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "int"}],
                },
            ],
            "default": None,
        },
    ],
}

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def sales(n: int) -> list[dict]:
    return [
        {
            "invoice": 536_365 + i,
            "qty": i - 3,
            "price": 2.55 * (i + 1),
            "country": ["United Kingdom", "France", "Ísland"][i % 3],
            "customer": None if i % 4 == 0 else 17_850 + i,
            "channel": ["WEB", "SHOP"][i % 2],
            "tags": [f"t{j}" for j in range(i % 3)],
            "extra": {"qty": i},
            "at": START + dt.timedelta(milliseconds=1_500 * i),
            "day": dt.date(2026, 1, 1) + dt.timedelta(days=i),
            "amount": decimal.Decimal(f"{i}.{i % 100:02d}"),
            "address": None if i % 5 == 0 else {"city": f"c{i}", "zip": 1000 + i},
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def broker():
    with tk.LocalBroker(schema_registry=True) as b:
        yield b


@pytest.fixture
def registry(broker) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": broker.schema_registry_url})


def config(broker) -> dict[str, str]:
    return {"schema.registry.url": broker.schema_registry_url}


def new_topic(broker, partitions: int = 1) -> str:
    topic = f"avro-{uuid.uuid4().hex[:10]}"
    tk.Admin(broker.bootstrap_servers).create_topic(topic, partitions=partitions)
    return topic


def produce(broker, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i, v in enumerate(values):
        producer.produce(topic, v, key=None if keys is None else keys[i])
    assert producer.flush(20) == 0


def consume(broker, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    assert len(got) == count
    return got


def read_all(broker, topic: str, rows: int, **kwargs) -> pl.DataFrame:
    cfg = kwargs.pop("config", config(broker))
    with tk.Consumer(
        broker.bootstrap_servers, cfg, topics=[topic], offset="earliest", **kwargs
    ) as c:
        frames = []
        deadline = time.monotonic() + 30
        while sum(len(f) for f in frames) < rows and time.monotonic() < deadline:
            f = c.poll_frame(timeout=1.0)
            if f is not None:
                frames.append(f)
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def serialize(registry, topic: str, schema: dict, rows: list[dict]) -> list[bytes]:
    serializer = AvroSerializer(registry, json.dumps(schema))
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [serializer(row, ctx) for row in rows]


def test_confluent_avro_rows_come_back_with_their_values_and_types(broker, registry):
    topic = new_topic(broker)
    rows = sales(40)
    produce(broker, topic, serialize(registry, topic, SALE, rows))
    for fmt in ("avro", "auto"):
        df = read_all(broker, topic, len(rows), format=fmt)
        assert df.height == len(rows)
        assert df.schema["invoice"] == pl.Int64
        assert df.schema["qty"] == pl.Int32
        assert df.schema["price"] == pl.Float64
        assert df.schema["country"] == pl.String
        assert df.schema["at"] == pl.Datetime("ms", "UTC")
        assert df.schema["day"] == pl.Date
        assert df.schema["amount"] == pl.Decimal(10, 2)
        assert df.schema["channel"] in (pl.Categorical, pl.Enum(["WEB", "SHOP"]))
        assert df.schema["tags"] == pl.List(pl.String)
        assert df.schema["address"] == pl.Struct({"city": pl.String, "zip": pl.Int32})
        got = df.to_dicts()
        for row, back in zip(rows, got, strict=True):
            for name in ("invoice", "qty", "price", "country", "customer", "tags", "day"):
                assert back[name] == row[name], name
            assert back["channel"] == row["channel"]
            assert back["at"] == row["at"]
            assert back["amount"] == row["amount"]
            assert back["address"] == row["address"]
            extra = back["extra"]
            if isinstance(extra, list):  # Polars holds a map as a list of key/value structs
                extra = {e["key"]: e["value"] for e in extra}
            assert extra == row["extra"]


def test_tskafka_avro_rows_are_read_by_avro_deserializer_unchanged(broker, registry):
    topic = new_topic(broker)
    frame = pl.DataFrame(
        {
            "invoice": [536_365, 536_366, 536_367],
            "qty": pl.Series([6, None, -2], dtype=pl.Int32),
            "price": [2.55, 3.39, None],
            "country": ["United Kingdom", None, "Ísland"],
            "at": pl.Series(
                [START, START + dt.timedelta(microseconds=1_500_001), None],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "local": pl.Series([dt.datetime(2026, 1, 1, 9, 30)] * 3, dtype=pl.Datetime("ms")),
            "day": [dt.date(2026, 1, 1), None, dt.date(1969, 12, 31)],
            "ok": [True, False, None],
            "tags": [["a", "b"], [], None],
            "address": [{"city": "x", "zip": 1}, None, {"city": "z", "zip": 3}],
            "Unit Price": [1.0, 2.0, 3.0],
        }
    )
    with pytest.warns(UserWarning, match='"Unit Price" -> "Unit_Price"'):
        report = tk.Producer(broker.bootstrap_servers, config(broker)).send(
            topic, frame, format="avro"
        )
    assert report.rows == 3 and report.messages == 3
    latest = registry.get_latest_version(f"{topic}-value")
    assert latest.version == 1
    assert latest.schema.schema_type == "AVRO"
    registered = json.loads(latest.schema.schema_str)
    names = [f["name"] for f in registered["fields"]]
    assert "Unit_Price" in names
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    payloads = consume(broker, topic, 3)
    assert all(p[0] == 0 and int.from_bytes(p[1:5], "big") == latest.schema_id for p in payloads)
    got = [deserializer(p, ctx) for p in payloads]
    expected = frame.rename({"Unit Price": "Unit_Price"}).to_dicts()
    for back, row in zip(got, expected, strict=True):
        assert back == row
    # tskafka reads its own rows back with the same columns and types.
    df = read_all(broker, topic, 3, format="avro")
    assert df.columns == frame.columns
    assert df.schema == frame.schema
    assert df.to_dicts() == frame.to_dicts()
    # The same frame again registers nothing new.
    with pytest.warns(UserWarning, match="Unit_Price"):
        tk.Producer(broker.bootstrap_servers, config(broker)).send(topic, frame, format="avro")
    assert registry.get_versions(f"{topic}-value") == [1]


def test_renamed_columns_are_reported_once_per_schema(broker, registry):
    topic = new_topic(broker)
    frame = pl.DataFrame({"Unit Price": [1.5, 2.5], "1st": [1, 2], "ok": ["a", "b"]})
    producer = tk.Producer(broker.bootstrap_servers, config(broker))
    with pytest.warns(UserWarning) as caught:
        producer.send(topic, frame, format="avro")
    assert len(caught) == 1
    text = str(caught[0].message)
    assert '"Unit Price" -> "Unit_Price", "1st" -> "_1st".' in text, text
    assert '"ok"' not in text
    assert "tskafka restores the original names" in text and "other readers" in text
    assert "schema=" in text
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        producer.send(topic, frame, format="avro")  # the same schema: said once
        producer.send(new_topic(broker), pl.DataFrame({"fine_name": [1]}), format="avro")
    # Other readers see the Avro names; tskafka gives the columns back.
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = [deserializer(p, ctx) for p in consume(broker, topic, 4)]
    assert got[0] == {"Unit_Price": 1.5, "_1st": 1, "ok": "a"}
    assert read_all(broker, topic, 4, format="avro").columns == frame.columns
    # tk.replay says it too (as the CLI's replay --format avro does).
    replayed = new_topic(broker)
    with pytest.warns(UserWarning, match='"Unit Price" -> "Unit_Price"'):
        r = tk.replay(
            frame, replayed, broker.bootstrap_servers, config(broker), speed=None, format="avro"
        )
    r.wait(30)
    assert r.progress.rows_delivered == 2


def test_columns_that_collide_as_avro_names_are_refused(broker, registry):
    topic = new_topic(broker)
    producer = tk.Producer(broker.bootstrap_servers, config(broker))
    for a, b in [("a b", "a_b"), ("x-y", "x.y")]:
        frame = pl.DataFrame({a: [1], b: [2]})
        with pytest.raises(tk.SchemaError) as info:
            producer.send(topic, frame, format="avro")
        message = str(info.value)
        assert f'columns "{a}" and "{b}"' in message, message
        assert "rename one" in message and "schema=" in message
    assert f"{topic}-value" not in registry.get_subjects()  # nothing was registered


def test_subject_and_schema_overrides(broker, registry):
    topic = new_topic(broker)
    # Polars makes a struct of a dict column, so the map field stays out.
    schema = {**SALE, "fields": [f for f in SALE["fields"] if f["name"] != "extra"]}
    rows = [{k: v for k, v in row.items() if k != "extra"} for row in sales(5)]
    frame = pl.DataFrame(rows).with_columns(pl.col("at").dt.cast_time_unit("ms"))
    subject = f"custom-{uuid.uuid4().hex[:6]}"
    tk.Producer(broker.bootstrap_servers, config(broker)).send(
        topic, frame, format="avro", subject=subject, schema=json.dumps(schema)
    )
    latest = registry.get_latest_version(subject)
    registered = json.loads(latest.schema.schema_str)
    assert [f["name"] for f in registered["fields"]] == [f["name"] for f in schema["fields"]]
    deserializer = AvroDeserializer(registry, json.dumps(schema))
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = [deserializer(p, ctx) for p in consume(broker, topic, 5)]
    assert got == rows


def test_keys_are_read_as_text_and_sent_from_a_column(broker, registry):
    topic = new_topic(broker, partitions=2)
    frame = pl.DataFrame({"code": ["A", "B", "A"], "qty": [1, 2, 3]})
    tk.Producer(broker.bootstrap_servers, config(broker)).send(
        topic, frame, format="avro", key="code"
    )
    df = read_all(broker, topic, 3, format="avro", metadata=True)
    assert sorted(zip(df["kafka_key"], df["qty"], strict=True)) == [("A", 1), ("A", 3), ("B", 2)]


def test_avro_keys_are_shown_as_text(broker, registry):
    topic = new_topic(broker)
    key_ser = AvroSerializer(registry, json.dumps({"type": "string"}))
    kctx = SerializationContext(topic, MessageField.KEY)
    record_key = AvroSerializer(
        registry,
        json.dumps({"type": "record", "name": "K", "fields": [{"name": "id", "type": "long"}]}),
        conf={"auto.register.schemas": True, "subject.name.strategy": lambda ctx, name: "k2-key"},
    )
    values = serialize(registry, topic, SALE, sales(2))
    produce(broker, topic, values, keys=[key_ser("85123A", kctx), record_key({"id": 7}, kctx)])
    df = read_all(broker, topic, 2, format="avro", key_format="avro", metadata=True)
    assert df["kafka_key"].to_list() == ["85123A", '{"id":7}']
    with pytest.raises(tk.ConfigError, match="key_format"):
        tk.Consumer(broker.bootstrap_servers, config(broker), key_format="protobuf")


def test_evolution_unions_compatible_schemas_and_splits_the_others(broker, registry):
    topic = new_topic(broker)
    v1 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    v2 = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": ["null", "string"], "default": None},
        ],
    }
    payloads = serialize(registry, topic, v1, [{"a": 1}, {"a": 2}])
    payloads += serialize(registry, topic, v2, [{"a": 3, "b": "x"}])
    other = f"{topic}-other"
    v3 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    ctx = SerializationContext(other, MessageField.VALUE)
    payloads += [AvroSerializer(registry, json.dumps(v3))({"a": "text"}, ctx)]
    produce(broker, topic, payloads)
    with tk.Consumer(
        broker.bootstrap_servers, config(broker), topics=[topic], offset="earliest", format="avro"
    ) as c:
        first = None
        deadline = time.monotonic() + 20
        while first is None and time.monotonic() < deadline:
            first = c.poll_frame(timeout=1.0)
        assert first is not None
        assert first.to_dicts() == [
            {"a": 1, "b": None},
            {"a": 2, "b": None},
            {"a": 3, "b": "x"},
        ]
        second = c.poll_frame(timeout=5.0)
        assert second.to_dicts() == [{"a": "text"}]


def test_json_schema_both_ways(broker, registry):
    topic = new_topic(broker)
    schema = {
        "type": "object",
        "properties": {
            "invoice": {"type": "integer"},
            "price": {"type": "number"},
            "country": {"type": ["string", "null"]},
            "at": {"type": "string", "format": "date-time"},
        },
    }
    serializer = JSONSerializer(json.dumps(schema), registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    rows = [
        {"invoice": 1, "price": 2.5, "country": "France", "at": "2026-01-01T00:00:01Z"},
        {"invoice": 2, "price": 3.0, "country": None, "at": "2026-01-01T00:00:02.5Z"},
    ]
    produce(broker, topic, [serializer(r, ctx) for r in rows])
    for fmt in ("json_schema", "auto"):
        df = read_all(broker, topic, 2, format=fmt)
        assert df.schema["invoice"] == pl.Int64
        assert df.schema["price"] == pl.Float64
        assert df.schema["at"] == pl.Datetime("us", "UTC")
        assert df["country"].to_list() == ["France", None]
        assert df["at"].to_list() == [
            START + dt.timedelta(seconds=1),
            START + dt.timedelta(seconds=2.5),
        ]
    # tskafka's own rows: Confluent's JSONDeserializer reads them, and
    # tskafka reads them back with the frame's dtypes.
    topic = new_topic(broker)
    frame = pl.DataFrame(
        {
            "n": pl.Series([1, 2], dtype=pl.Int32),
            "x": [0.5, None],
            "s": ["a", "b"],
            "at": pl.Series([START, START], dtype=pl.Datetime("ms", "UTC")),
        }
    )
    tk.Producer(broker.bootstrap_servers, config(broker)).send(topic, frame, format="json_schema")
    latest = registry.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    deserializer = JSONDeserializer(None, schema_registry_client=registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = [deserializer(p, ctx) for p in consume(broker, topic, 2)]
    assert got == [
        {"n": 1, "x": 0.5, "s": "a", "at": "2026-01-01T00:00:00Z"},
        {"n": 2, "x": None, "s": "b", "at": "2026-01-01T00:00:00Z"},
    ]
    df = read_all(broker, topic, 2, format="json_schema")
    assert df.schema == frame.schema
    assert df.to_dicts() == frame.to_dicts()


def test_replay_and_cli_send_avro(broker, registry, tmp_path):
    topic = new_topic(broker)
    frame = pl.DataFrame(
        {
            "at": pl.Series([START + dt.timedelta(seconds=i) for i in range(20)]),
            "qty": list(range(20)),
        }
    )
    r = tk.replay(frame, topic, broker.bootstrap_servers, config(broker), speed=None, format="avro")
    r.wait(30)
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    got = [deserializer(p, ctx) for p in consume(broker, topic, 20)]
    assert [g["qty"] for g in got] == list(range(20))
    df = read_all(broker, topic, 20, format="avro")
    assert df["qty"].to_list() == list(range(20))


# ---------------------------------------------------------------- errors


def test_an_unknown_schema_id_names_the_message_and_obeys_on_error(broker):
    topic = new_topic(broker)
    good = tk.Producer(broker.bootstrap_servers, config(broker))
    good.send(topic, pl.DataFrame({"a": [1]}), format="avro")
    produce(broker, topic, [b"\x00\x00\x01\x86\xa0\x02"])  # schema id 100000
    good.send(topic, pl.DataFrame({"a": [2]}), format="avro")
    with tk.Consumer(
        broker.bootstrap_servers, config(broker), topics=[topic], offset="earliest", format="avro"
    ) as c:
        with pytest.raises(tk.DecodeError) as info:
            for _ in range(20):
                c.poll_frame(timeout=1.0)
        message = str(info.value)
        assert f"{topic}[0]@1" in message and "schema id 100000" in message, message
        assert info.value.offset == 1
    df = read_all(broker, topic, 2, format="avro", on_error="skip")
    assert df["a"].to_list() == [1, 2]


def test_bytes_that_do_not_match_their_schema_are_poison_messages(broker, registry):
    topic = new_topic(broker)
    schema_id = registry.register_schema(
        f"{topic}-value",
        Schema(
            json.dumps(
                {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
            ),
            "AVRO",
        ),
    )
    head = b"\x00" + schema_id.to_bytes(4, "big")
    produce(broker, topic, [head + b"\x02a", head + b"\x08ab", head + b"\x02\xff", head + b"\x02b"])
    with tk.Consumer(
        broker.bootstrap_servers, config(broker), topics=[topic], offset="earliest", format="avro"
    ) as c:
        with pytest.raises(tk.DecodeError) as info:
            for _ in range(20):
                c.poll_frame(timeout=1.0)
        assert "@1" in str(info.value) and f"schema id {schema_id}" in str(info.value)
    with tk.Consumer(
        broker.bootstrap_servers,
        config(broker),
        topics=[topic],
        offset="earliest",
        format="avro",
        on_error="skip",
    ) as c:
        frames = [c.poll_frame(timeout=2.0)]
        assert frames[0]["s"].to_list() == ["a", "b"]
        bad = c.bad_messages
        assert [b[2] for b in bad] == [1, 2]
        assert "UTF-8" in bad[1][3]


def test_a_registry_that_is_down_or_refuses_credentials_is_a_clear_error():
    with tk.LocalBroker(users={"alice": PASSWORD}, schema_registry=True) as b:
        sasl = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": PASSWORD,
        }
        right = {
            **sasl,
            "schema.registry.url": b.schema_registry_url,
            "basic.auth.user.info": f"alice:{PASSWORD}",
        }
        wrong = {**right, "basic.auth.user.info": "alice:wrong-" + PASSWORD[:5]}
        topic = f"down-{uuid.uuid4().hex[:6]}"
        tk.Admin(b.bootstrap_servers, sasl).create_topic(topic)
        with pytest.raises(tk.ConfigError) as info:
            tk.Producer(b.bootstrap_servers, wrong).send(
                topic, pl.DataFrame({"a": [1]}), format="avro"
            )
        assert "refused the credentials" in str(info.value)
        assert "wrong-" not in str(info.value) and PASSWORD not in repr(info.value)
        tk.Producer(b.bootstrap_servers, right).send(topic, pl.DataFrame({"a": [1]}), format="avro")
        with tk.Consumer(
            b.bootstrap_servers, wrong, topics=[topic], offset="earliest", format="avro"
        ) as c:
            with pytest.raises(tk.ConfigError) as info:
                for _ in range(20):
                    c.poll_frame(timeout=1.0)
            assert f"{topic}[0]@0" in str(info.value) and "schema id 1" in str(info.value)
            assert "basic.auth.user.info" in str(info.value)
        # Down: nothing listens on the port; the call ends within its timeout.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        down = {**right, "schema.registry.url": f"http://127.0.0.1:{port}"}
        with tk.Consumer(
            b.bootstrap_servers, down, topics=[topic], offset="earliest", format="avro"
        ) as c:
            started = time.monotonic()
            with pytest.raises(tk.KafkaError) as info:
                for _ in range(20):
                    c.poll_frame(timeout=1.0)
            assert time.monotonic() - started < 15
            assert "could not reach the schema registry" in str(info.value)
            assert f"{topic}[0]@0" in str(info.value)
            # Nothing was consumed: with the registry back, the row is read.
        with tk.Consumer(
            b.bootstrap_servers, right, topics=[topic], offset="earliest", format="avro"
        ) as c:
            assert c.poll_frame(timeout=5.0)["a"].to_list() == [1]
        with pytest.raises(tk.KafkaError):
            tk.Producer(b.bootstrap_servers, down).send(
                topic, pl.DataFrame({"a": [1]}), format="avro"
            )


def test_setup_and_column_errors_name_what_to_do(broker):
    topic = new_topic(broker)
    producer = tk.Producer(broker.bootstrap_servers, config(broker))
    with pytest.raises(tk.SchemaError) as info:
        producer.send(topic, pl.DataFrame({"span": [dt.timedelta(seconds=1)]}), format="avro")
    assert '"span"' in str(info.value) and "Avro cannot carry" in str(info.value)
    with pytest.raises(tk.ConfigError, match="schema.registry.url"):
        tk.Producer(broker.bootstrap_servers).send(topic, pl.DataFrame({"a": [1]}), format="avro")
    with pytest.raises(tk.ConfigError, match="http://"):
        tk.Producer(broker.bootstrap_servers, {"schema.registry.url": "localhost:1"})
    with pytest.raises(tk.SchemaError, match="not a valid Avro schema"):
        producer.send(topic, pl.DataFrame({"a": [1]}), format="avro", schema='{"type": "nope"}')
    with pytest.raises(tk.SchemaError, match="no such column"):
        producer.send(
            topic,
            pl.DataFrame({"a": [1]}),
            format="avro",
            schema=json.dumps(
                {"type": "record", "name": "R", "fields": [{"name": "b", "type": "int"}]}
            ),
        )
    # An incompatible change is refused by the registry with its reason.
    producer.send(topic, pl.DataFrame({"a": [1]}), format="avro")
    with pytest.raises(tk.SchemaError, match="409"):
        producer.send(topic, pl.DataFrame({"a": ["text"]}), format="avro")
    # A framed message with no registry configured says what to add.
    produce(broker, topic, [b"\x00\x00\x00\x00\x01\x02"])
    with (
        tk.Consumer(
            broker.bootstrap_servers, topics=[topic], offset="earliest", format="avro"
        ) as c,
        pytest.raises(tk.DecodeError, match="schema.registry.url"),
    ):
        for _ in range(10):
            c.poll_frame(timeout=1.0)
