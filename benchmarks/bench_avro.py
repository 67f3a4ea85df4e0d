"""Avro through the Schema Registry, one record per message, on one
LocalBroker with its registry: tskafka against confluent-kafka's
AvroSerializer / AvroDeserializer, the paths taking turns.

    python benchmarks/bench_avro.py [--rows 200000] [--runs 3]

- send: tskafka `send(format="avro")` of the retail frame against
  `AvroSerializer` + `Producer.produce` per row (rows already dicts), flush
  included, both with the schema tskafka registered;
- read: tskafka `poll_frame(format="avro")` into Polars against
  `Consumer.consume` + `AvroDeserializer` per message + `pl.DataFrame(rows)`.

Prints each path's median rows/s and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import polars as pl

import tskafka as tk
from tskafka import datasets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import confluent_kafka as ck
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    broker = tk.LocalBroker(schema_registry=True)
    bootstrap = broker.bootstrap_servers
    config = {"schema.registry.url": broker.schema_registry_url}
    admin = tk.Admin(bootstrap)
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    registry = SchemaRegistryClient({"url": broker.schema_registry_url})
    producer = tk.Producer(bootstrap, config)

    def topic() -> str:
        name = f"avro-{uuid.uuid4().hex[:8]}"
        admin.create_topic(name, partitions=3)
        return name

    # The schema both paths write: the one tskafka derives and registers.
    first = topic()
    producer.send(first, retail, format="avro")
    schema = registry.get_latest_version(f"{first}-value").schema.schema_str
    rows = retail.to_dicts()

    def tk_send() -> None:
        producer.send(topic(), retail, format="avro", subject="bench-value")

    serializer = AvroSerializer(registry, schema, conf={"auto.register.schemas": True})

    def ck_send() -> None:
        name = topic()
        p = ck.Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
        )
        ctx = SerializationContext(name, MessageField.VALUE)
        for row in rows:
            value = serializer(row, ctx)
            while True:
                try:
                    p.produce(name, value)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        assert p.flush(60) == 0

    def tk_read() -> None:
        with tk.Consumer(bootstrap, config, topics=[first], offset="earliest", format="avro") as c:
            got = 0
            while got < n:
                f = c.poll_frame(max_rows=n - got, timeout=10)
                assert f is not None, f"stalled at {got}"
                got += f.height

    def tk_read_topic() -> None:
        frame = tk.read_topic(first, bootstrap, config, format="avro")
        assert frame.height == n

    deserializer = AvroDeserializer(registry)

    def ck_read() -> None:
        c = ck.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5,
                "max.partition.fetch.bytes": 16 << 20,
                "fetch.max.bytes": 4 << 20,
            }
        )
        c.subscribe([first])
        ctx = SerializationContext(first, MessageField.VALUE)
        out = []
        while len(out) < n:
            for m in c.consume(1000, timeout=10):
                if m.error() is None:
                    out.append(deserializer(m.value(), ctx))
        c.close()
        frame = pl.DataFrame(out)
        assert frame.height == n

    paths = {
        "tskafka send avro": tk_send,
        "AvroSerializer + produce": ck_send,
        "tskafka avro -> polars": tk_read,
        "tskafka read_topic avro -> polars": tk_read_topic,
        "consume + AvroDeserializer + pl.DataFrame": ck_read,
    }
    wall: dict[str, list[float]] = {label: [] for label in paths}
    for i in range(args.runs):
        for label in list(paths)[:: 1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            paths[label]()
            wall[label].append(time.perf_counter() - started)
    print(f"retail rows: {n:,}, one Avro record per message, {args.runs} runs of each, median:")
    rate = {label: n / statistics.median(t) for label, t in wall.items()}
    for label in paths:
        print(f"  {label:<42} {rate[label]:>12,.0f} rows/s")
    print(
        f"  send: tskafka vs confluent {rate['tskafka send avro'] / rate['AvroSerializer + produce']:.1f}x"
    )
    print(
        f"  read: tskafka vs confluent "
        f"{rate['tskafka avro -> polars'] / rate['consume + AvroDeserializer + pl.DataFrame']:.1f}x"
        f" (Consumer), "
        f"{rate['tskafka read_topic avro -> polars'] / rate['consume + AvroDeserializer + pl.DataFrame']:.1f}x"
        f" (read_topic)"
    )
    broker.close()


if __name__ == "__main__":
    main()
