"""The embedded Schema Registry against confluent-kafka's own clients:
SchemaRegistryClient for the REST API, AvroSerializer/AvroDeserializer and
JSONSerializer/JSONDeserializer with confluent-kafka's Producer and Consumer
on the embedded broker; restarts, HTTP Basic and TLS."""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid

import pytest
from helpers import broker_cli, free_port

import tskafka as tk

pytest.importorskip("fastavro")
pytest.importorskip("authlib")
httpx = pytest.importorskip("httpx")
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

PASSWORD = "sr-pw-91c3e7-sentinel"

SALE_V1 = {
    "type": "record",
    "name": "Sale",
    "namespace": "shop",
    "fields": [
        {"name": "invoice", "type": "long"},
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
    ],
}


def _with_field(schema: dict, field: dict) -> dict:
    return {**schema, "fields": [*schema["fields"], field]}


def _subject() -> str:
    return f"sr-{uuid.uuid4().hex[:10]}-value"


@pytest.fixture(scope="module")
def broker():
    with tk.LocalBroker(schema_registry=True) as b:
        yield b


@pytest.fixture
def client(broker) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": broker.schema_registry_url})


def _avro(schema: dict) -> Schema:
    return Schema(json.dumps(schema), "AVRO")


def test_register_look_up_and_list(broker, client):
    assert broker.schema_registry_url.startswith("http://127.0.0.1:")
    subject = _subject()
    schema_id = client.register_schema(subject, _avro(SALE_V1))
    # The same schema laid out otherwise (key order, whitespace) is the same schema.
    relaid = json.dumps(dict(reversed(list(SALE_V1.items()))), indent=2)
    fresh = SchemaRegistryClient({"url": broker.schema_registry_url})
    assert fresh.register_schema(subject, Schema(relaid, "AVRO")) == schema_id
    # Another subject holding the same schema shares its id.
    other = _subject()
    assert fresh.register_schema(other, _avro(SALE_V1)) == schema_id

    fetched = fresh.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert json.loads(fetched.schema_str)["name"] == "Sale"
    latest = fresh.get_latest_version(subject)
    assert (latest.schema_id, latest.subject, latest.version) == (schema_id, subject, 1)
    assert fresh.get_version(subject, 1).schema_id == schema_id
    assert fresh.get_versions(subject) == [1]
    assert {subject, other} <= set(fresh.get_subjects())
    found = fresh.lookup_schema(subject, Schema(relaid, "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)
    pairs = {(v.subject, v.version) for v in fresh.get_schema_versions(schema_id)}
    assert pairs == {(subject, 1), (other, 1)}
    assert set(fresh.get_subjects_by_schema_id(schema_id)) == {subject, other}
    assert set(fresh.get_schema_types()) == {"AVRO", "JSON", "PROTOBUF"}

    with pytest.raises(SchemaRegistryError) as missing:
        fresh.get_versions("no-such-subject")
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as missing:
        fresh.get_version(subject, 7)
    assert missing.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as missing:
        fresh.get_schema(999_999)
    assert missing.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as invalid:
        fresh.register_schema(subject, Schema('{"type": "record", "name": "R"}', "AVRO"))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)
    assert "fields" in invalid.value.error_message


def test_compatibility_levels_refuse_what_old_readers_cannot_read(client):
    subject = _subject()
    assert client.get_compatibility() == "BACKWARD"
    client.register_schema(subject, _avro(SALE_V1))
    # A field with a default: new readers fill it in for old records.
    v2 = _with_field(SALE_V1, {"name": "discount", "type": "double", "default": 0.0})
    assert client.register_schema(subject, _avro(v2)) > 0
    no_default = _with_field(v2, {"name": "store", "type": "string"})
    assert client.test_compatibility(subject, _avro(no_default)) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, _avro(no_default))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "store" in refused.value.error_message and "BACKWARD" in refused.value.error_message
    # A narrowing type change is refused too (long cannot be read as int).
    narrowed = {**v2, "fields": [{"name": "invoice", "type": "int"}, *v2["fields"][1:]]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, _avro(narrowed))
    assert refused.value.error_code == 409
    assert client.get_versions(subject) == [1, 2]

    assert client.set_compatibility(subject, "NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility(subject) == "NONE"
    assert client.register_schema(subject, _avro(no_default)) > 0
    assert client.get_versions(subject) == [1, 2, 3]

    # FORWARD: old readers must read new data; dropping a field they need is refused.
    forward = _subject()
    client.set_compatibility(forward, "FORWARD")
    client.register_schema(forward, _avro(SALE_V1))
    dropped = {**SALE_V1, "fields": SALE_V1["fields"][1:]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(forward, _avro(dropped))
    assert refused.value.error_code == 409
    client.delete_config(forward)
    with pytest.raises(SchemaRegistryError) as unset:
        client.get_compatibility(forward)
    assert unset.value.error_code == 40408
    with pytest.raises(SchemaRegistryError) as invalid:
        client.set_compatibility(forward, "SIDEWAYS")
    assert invalid.value.error_code == 42203


def test_transitive_levels_check_every_version(client):
    subject = _subject()
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    base = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    client.register_schema(subject, _avro(base))
    # v2 drops "a"; v3 brings it back as a string: v2's data is fine, v1's
    # ints are not, and only the transitive level looks back that far.
    v2 = {**base, "fields": [{"name": "b", "type": "int", "default": 0}]}
    client.register_schema(subject, _avro(v2))
    v3 = {**base, "fields": [*v2["fields"], {"name": "a", "type": "string", "default": ""}]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, _avro(v3))
    assert refused.value.error_code == 409
    client.set_compatibility(subject, "BACKWARD")
    assert client.register_schema(subject, _avro(v3)) > 0


def test_deletes_soft_then_permanent(client):
    subject = _subject()
    first = client.register_schema(subject, _avro(SALE_V1))
    v2 = _with_field(SALE_V1, {"name": "note", "type": "string", "default": ""})
    client.register_schema(subject, _avro(v2))
    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    # A soft-deleted schema still resolves by id, for messages already written.
    assert json.loads(client.get_schema(first).schema_str)["name"] == "Sale"
    with pytest.raises(SchemaRegistryError) as not_first:
        client.delete_subject(subject, permanent=True)
    assert not_first.value.error_code == 40405
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_latest_version(subject)
    assert gone.value.error_code == 40401
    assert sorted(client.delete_subject(subject, permanent=True)) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)


def _produce(broker, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for v in values:
        producer.produce(topic, v)
    assert producer.flush(20) == 0


def _consume(broker, topic: str, count: int) -> list[bytes]:
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
        for _ in range(300):
            if len(got) == count:
                break
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    assert len(got) == count
    return got


def _produce_and_consume(broker, topic: str, values: list[bytes]) -> list[bytes]:
    _produce(broker, topic, values)
    return _consume(broker, topic, len(values))


def _sales(n: int) -> list[dict]:
    import datetime as dt

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "invoice": 536_365 + i,
            "price": 2.55 * (i + 1),
            "country": ["United Kingdom", "France", "Ísland"][i % 3],
            "customer": None if i % 4 == 0 else 17_850 + i,
            "channel": ["WEB", "SHOP"][i % 2],
            "tags": [f"t{j}" for j in range(i % 3)],
            "extra": {"qty": i},
            "at": start + dt.timedelta(milliseconds=1_500 * i),
        }
        for i in range(n)
    ]


def test_avro_serializer_round_trip_through_the_broker(broker, client):
    topic = f"sr-avro-{uuid.uuid4().hex[:8]}"
    tk.Admin(broker.bootstrap_servers).create_topic(topic)
    serializer = AvroSerializer(client, json.dumps(SALE_V1))
    rows = _sales(50)
    ctx = SerializationContext(topic, MessageField.VALUE)
    payloads = [serializer(row, ctx) for row in rows]
    # Confluent framing: magic 0, then the id the registry gave, big-endian.
    registered = client.get_latest_version(f"{topic}-value")
    assert {p[:5] for p in payloads} == {b"\0" + registered.schema_id.to_bytes(4, "big")}
    got = _produce_and_consume(broker, topic, payloads)
    # A fresh client: the deserializer must fetch the schema by id from the registry.
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": broker.schema_registry_url}))
    assert [deserializer(v, ctx) for v in got] == rows


def test_json_schema_serializer_round_trip_through_the_broker(broker, client):
    topic = f"sr-json-{uuid.uuid4().hex[:8]}"
    tk.Admin(broker.bootstrap_servers).create_topic(topic)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Reading",
        "type": "object",
        "properties": {
            "sensor": {"type": "string"},
            "value": {"type": "number"},
            "ok": {"type": "boolean"},
        },
        "required": ["sensor", "value"],
    }
    serializer = JSONSerializer(json.dumps(schema), client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    rows = [{"sensor": f"s{i}", "value": i * 0.5, "ok": i % 2 == 0} for i in range(20)]
    got = _produce_and_consume(broker, topic, [serializer(r, ctx) for r in rows])
    deserializer = JSONDeserializer(
        None, schema_registry_client=SchemaRegistryClient({"url": broker.schema_registry_url})
    )
    assert [deserializer(v, ctx) for v in got] == rows
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema.schema_type == "JSON"
    with pytest.raises(Exception, match="sensor|required"):
        serializer({"value": 1.0}, ctx)
    # A property the reader now requires, that old writers may have left out: refused.
    stricter = {**schema, "required": ["sensor", "value", "ok"]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(f"{topic}-value", Schema(json.dumps(stricter), "JSON"))
    assert refused.value.error_code == 409


def test_references_are_resolved_and_protect_what_they_name(broker, client):
    from confluent_kafka.schema_registry import SchemaReference

    address_subject, order_subject = _subject(), _subject()
    address = {
        "type": "record",
        "name": "Address",
        "namespace": "shop",
        "fields": [{"name": "city", "type": "string"}],
    }
    client.register_schema(address_subject, _avro(address))
    order = {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [{"name": "to", "type": "shop.Address"}],
    }
    ref = SchemaReference("shop.Address", address_subject, 1)
    order_id = client.register_schema(order_subject, Schema(json.dumps(order), "AVRO", [ref]))
    fetched = SchemaRegistryClient({"url": broker.schema_registry_url}).get_schema(order_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [
        ("shop.Address", address_subject, 1)
    ]
    assert client.get_referenced_by(address_subject, 1) == [order_id]
    with pytest.raises(SchemaRegistryError) as referenced:
        client.delete_subject(address_subject)
    assert referenced.value.error_code == 42206
    # Without the reference, the name is unknown: an invalid schema.
    with pytest.raises(SchemaRegistryError) as unknown:
        client.register_schema(_subject(), Schema(json.dumps(order), "AVRO"))
    assert unknown.value.error_code == 42201 and "shop.Address" in unknown.value.error_message


def test_protobuf_schemas_are_stored_and_served(client):
    subject = _subject()
    text = 'syntax = "proto3";\npackage shop;\nmessage Sale { int64 invoice = 1; }\n'
    schema_id = client.register_schema(subject, Schema(text, "PROTOBUF"))
    fetched = SchemaRegistryClient(client.config()).get_schema(schema_id)
    assert (fetched.schema_type, fetched.schema_str) == ("PROTOBUF", text)


def test_schemas_survive_a_restart_of_a_file_backed_broker(tmp_path):
    storage = tmp_path / "kafka.db"
    subject = "restart-value"
    with tk.LocalBroker(storage=storage, schema_registry=True) as b:
        client = SchemaRegistryClient({"url": b.schema_registry_url})
        first = client.register_schema(subject, _avro(SALE_V1))
        v2 = _with_field(SALE_V1, {"name": "note", "type": "string", "default": ""})
        second = client.register_schema(subject, _avro(v2))
        client.set_compatibility(subject, "FULL")
        client.delete_version(subject, 1)
        topic = "restart-sales"
        tk.Admin(b.bootstrap_servers).create_topic(topic)
        ctx = SerializationContext(topic, MessageField.VALUE)
        payload = AvroSerializer(client, json.dumps(v2))({**_sales(1)[0], "note": "kept"}, ctx)
        _produce(b, topic, [payload])
    with tk.LocalBroker(storage=storage, schema_registry=True) as b:
        client = SchemaRegistryClient({"url": b.schema_registry_url})
        assert client.get_versions(subject) == [2]
        assert client.get_versions(subject, deleted=True) == [1, 2]
        assert client.get_latest_version(subject).schema_id == second
        assert json.loads(client.get_schema(first).schema_str)["name"] == "Sale"
        assert client.get_compatibility(subject) == "FULL"
        # Ids go on from where they were, and the same schema keeps its id.
        third = client.register_schema("another-value", Schema('"string"', "AVRO"))
        assert third > second
        assert client.register_schema("again-value", _avro(v2)) == second
        # A record written before the restart decodes with a fresh client.
        (value,) = _consume(b, "restart-sales", 1)
        ctx = SerializationContext("restart-sales", MessageField.VALUE)
        assert AvroDeserializer(client)(value, ctx)["note"] == "kept"


def test_users_are_asked_for_over_http_basic():
    users = {"alice": PASSWORD}
    with tk.LocalBroker(users=users, schema_registry=True) as b:
        url = b.schema_registry_url
        with pytest.raises(SchemaRegistryError) as anonymous:
            SchemaRegistryClient({"url": url}).get_subjects()
        assert (anonymous.value.http_status_code, anonymous.value.error_code) == (401, 401)
        wrong = SchemaRegistryClient({"url": url, "basic.auth.user.info": "alice:not-it"})
        with pytest.raises(SchemaRegistryError) as refused:
            wrong.get_subjects()
        assert refused.value.http_status_code == 401
        assert "not-it" not in str(refused.value)
        settings = b.schema_registry_config(password=PASSWORD)
        assert settings == {"url": url, "basic.auth.user.info": f"alice:{PASSWORD}"}
        client = SchemaRegistryClient(settings)
        assert client.register_schema("auth-value", _avro(SALE_V1)) == 1
        assert client.get_subjects() == ["auth-value"]
        response = httpx.get(f"{url}/subjects")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert PASSWORD not in repr(b) and PASSWORD not in response.text


def test_tls_when_the_broker_has_it(tmp_path):
    pytest.importorskip("cryptography")
    from test_security import Pki

    pki = Pki(tmp_path)
    with tk.LocalBroker(
        certfile=pki.cert, keyfile=pki.key, users={"alice": PASSWORD}, schema_registry=True
    ) as b:
        assert b.schema_registry_url.startswith("https://127.0.0.1:")
        settings = b.schema_registry_config(password=PASSWORD, ca_location=pki.ca)
        assert settings["ssl.ca.location"] == str(pki.ca)
        client = SchemaRegistryClient(settings)
        schema_id = client.register_schema("tls-value", _avro(SALE_V1))
        assert client.get_schema(schema_id).schema_type == "AVRO"
        # Plain HTTP to the TLS port gets no answer; an unknown CA is refused.
        with pytest.raises(httpx.HTTPError):
            httpx.get(b.schema_registry_url.replace("https", "http") + "/subjects", timeout=5)
        other_ca = ssl.create_default_context(cafile=str(pki.other_ca))
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{b.schema_registry_url}/subjects", verify=other_ca, timeout=5)


def test_client_certificates_when_the_registry_asks(tmp_path):
    """mTLS: a registry that asks for a client certificate signed by its CA,
    with tskafka and with confluent-kafka's SchemaRegistryClient set up alike."""
    pytest.importorskip("cryptography")
    import polars as pl
    from test_security import Pki

    pki = Pki(tmp_path)
    with tk.LocalBroker(
        certfile=pki.cert,
        keyfile=pki.key,
        users={"alice": PASSWORD},
        schema_registry=True,
        schema_registry_client_cafile=pki.ca,
    ) as b:
        url = b.schema_registry_url
        registry = b.schema_registry_config(password=PASSWORD, ca_location=pki.ca)
        with_cert = {
            **registry,
            "ssl.certificate.location": str(pki.client_cert),
            "ssl.key.location": str(pki.client_key),
        }
        client = SchemaRegistryClient(with_cert)
        assert client.register_schema("mtls-value", _avro(SALE_V1)) == 1
        with pytest.raises(Exception, match="(?i)certificate|ssl|handshake|alert"):
            SchemaRegistryClient(registry).get_subjects()

        kafka = b.client_config(password=PASSWORD, ca_location=pki.ca)
        sr = {
            "schema.registry.url": url,
            "basic.auth.user.info": f"alice:{PASSWORD}",
            "schema.registry.ssl.ca.location": str(pki.ca),
        }
        mtls = {
            **sr,
            "schema.registry.ssl.certificate.location": str(pki.client_cert),
            "schema.registry.ssl.key.location": str(pki.client_key),
        }
        topic = f"mtls-{uuid.uuid4().hex[:8]}"
        frame = pl.DataFrame({"invoice": [1, 2, 3], "country": ["a", "b", "c"]})
        tk.Producer(config={**kafka, **mtls}).send(topic, frame, format="avro")
        assert client.get_latest_version(f"{topic}-value").version == 1
        with tk.Consumer(
            config={**kafka, **mtls}, topics=[topic], offset="earliest", format="avro"
        ) as c:
            assert c.poll_frame(timeout=10).to_dicts() == frame.to_dicts()
        # The key may sit in the certificate's file, as Confluent's client allows.
        both = tmp_path / "client-and-key.pem"
        both.write_bytes(pki.client_cert.read_bytes() + pki.client_key.read_bytes())
        one_file = {**sr, "schema.registry.ssl.certificate.location": str(both)}
        tk.Producer(config={**kafka, **one_file}).send(topic, frame, format="avro")

        # Without a certificate, or with one from another CA: a clear error, fast.
        other = {
            **sr,
            "schema.registry.ssl.certificate.location": str(pki.other_client_cert),
            "schema.registry.ssl.key.location": str(pki.other_client_key),
        }
        for settings, needles in [
            (sr, ["asks for a client certificate", "schema.registry.ssl.key.location"]),
            (other, ["refused the client certificate", "signed by a CA the registry trusts"]),
        ]:
            started = time.monotonic()
            with pytest.raises(tk.ConfigError) as info:
                tk.Producer(config={**kafka, **settings}).send(
                    f"mtls-{uuid.uuid4().hex[:8]}", frame, format="avro"
                )
            assert time.monotonic() - started < 6
            message = str(info.value)
            assert url in message and "schema.registry.ssl.certificate.location" in message
            assert all(n in message for n in needles), message
            assert PASSWORD not in message

        with pytest.raises(tk.ConfigError, match="holds no usable private key"):
            tk.Producer(
                config={
                    **kafka,
                    **sr,
                    "schema.registry.ssl.certificate.location": str(pki.client_cert),
                }
            )
    with pytest.raises(tk.ConfigError, match="certfile= and keyfile="):
        tk.LocalBroker(schema_registry=True, schema_registry_client_cafile=pki.ca)


def test_credentials_in_the_url_or_inherited_from_sasl():
    """basic.auth.credentials.source: USER_INFO (the default; credentials in the
    URL then work too), URL, and SASL_INHERIT (sasl.username and sasl.password)."""
    import polars as pl

    with tk.LocalBroker(users={"alice": PASSWORD}, schema_registry=True) as b:
        kafka = b.client_config(password=PASSWORD)
        url = b.schema_registry_url
        in_url = url.replace("http://", f"http://alice:{PASSWORD}@")
        frame = pl.DataFrame({"n": [1, 2]})
        for registry in [
            {"schema.registry.url": in_url},
            {"schema.registry.url": in_url, "basic.auth.credentials.source": "URL"},
            {"schema.registry.url": url, "basic.auth.credentials.source": "SASL_INHERIT"},
            {
                "schema.registry.url": url,
                "schema.registry.basic.auth.credentials.source": "USER_INFO",
                "schema.registry.basic.auth.user.info": f"alice:{PASSWORD}",
            },
        ]:
            topic = f"creds-{uuid.uuid4().hex[:8]}"
            # An admin client takes the same config and leaves the registry's keys alone.
            tk.Admin(config={**kafka, **registry}).create_topic(topic)
            producer = tk.Producer(config={**kafka, **registry})
            producer.send(topic, frame, format="avro")
            assert PASSWORD not in repr(producer) and PASSWORD not in repr(tk.Config(registry))
            with tk.Consumer(
                config={**kafka, **registry}, topics=[topic], offset="earliest", format="avro"
            ) as c:
                assert c.poll_frame(timeout=10)["n"].to_list() == [1, 2]
        # confluent-kafka's client takes the same URL.
        assert f"{topic}-value" in SchemaRegistryClient({"url": in_url}).get_subjects()

        wrong = url.replace("http://", "http://alice:wrong-pw@")
        with pytest.raises(tk.ConfigError) as info:
            tk.Producer(config={**kafka, "schema.registry.url": wrong}).send(
                "x", frame, format="avro"
            )
        assert "refused the credentials" in str(info.value) and "wrong-pw" not in str(info.value)
        assert url in str(info.value)
        with pytest.raises(tk.ConfigError, match="holds no credentials"):
            tk.Producer(
                config={
                    **kafka,
                    "schema.registry.url": url,
                    "basic.auth.credentials.source": "URL",
                }
            )
        with pytest.raises(tk.ConfigError, match="sasl.username and sasl.password"):
            tk.Producer(
                b.bootstrap_servers,
                {"schema.registry.url": url, "basic.auth.credentials.source": "SASL_INHERIT"},
            )
        with pytest.raises(tk.ConfigError, match="given twice"):
            tk.Producer(
                config={
                    **kafka,
                    "schema.registry.url": in_url,
                    "basic.auth.user.info": f"alice:{PASSWORD}",
                }
            )


def test_http_details(broker):
    url = broker.schema_registry_url
    with httpx.Client(base_url=url) as http:
        response = http.get("/subjects/nothing-here/versions")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        body = response.json()
        assert body["error_code"] == 40401 and "nothing-here" in body["message"]
        # application/json in and out; many requests over one kept-alive connection.
        subject = _subject()
        for _ in range(20):
            response = http.post(
                f"/subjects/{subject}/versions",
                json={"schema": json.dumps(SALE_V1)},
                headers={"Accept": "application/json"},
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
        assert response.json()["version"] == 1
        raw = http.get(f"/subjects/{subject}/versions/latest/schema")
        assert raw.json() == SALE_V1
        assert http.get("/nowhere").json() == {"error_code": 404, "message": "HTTP 404 Not Found"}
        assert http.request("PATCH", "/subjects").status_code == 405
        assert http.post(f"/subjects/{subject}/versions", content=b"{oops").status_code == 400
        assert http.get(f"/subjects/{subject}/versions/zero").json()["error_code"] == 42202
        assert http.get("/mode").json() == {"mode": "READWRITE"}
    # A body sent after "Expect: 100-continue", as curl does for large ones.
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"schema": json.dumps(SALE_V1)}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"POST /subjects/expect-value/versions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK") and b'"version":1' in reply


def test_setup_errors_are_clear():
    with pytest.raises(tk.ConfigError, match="schema_registry=True"):
        tk.LocalBroker(schema_registry_port=18081)
    with tk.LocalBroker() as b, pytest.raises(tk.ConfigError, match="schema_registry=True"):
        _ = b.schema_registry_url
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(tk.BrokerError, match=str(port)):
            tk.LocalBroker(schema_registry=True, schema_registry_port=port)


def test_cli_broker_serves_a_schema_registry():
    broker_port, registry_port = free_port(), free_port()
    with broker_cli(
        "--port",
        str(broker_port),
        "--schema-registry",
        "--schema-registry-port",
        str(registry_port),
    ) as proc:
        assert f"127.0.0.1:{broker_port}" in proc.stdout.readline()
        line = proc.stdout.readline()
        url = f"http://127.0.0.1:{registry_port}"
        assert url in line, line
        client = SchemaRegistryClient({"url": url})
        assert client.register_schema("cli-value", _avro(SALE_V1)) == 1
