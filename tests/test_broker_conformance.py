"""The embedded broker answers other clients as Kafka does: `tskafka broker`
in another process, driven by the tutorials' producer code, confluent-kafka's
AdminClient (every request it offers), kafka-python's admin and group APIs,
and kcat's metadata and offset queries."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import pytest
from helpers import free_port

import tskafka as tk

confluent = pytest.importorskip("confluent_kafka")
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import admin as ck_admin

# An answer must come well before this; a client waiting it out is a failure.
REQUEST_TIMEOUT = 10.0


@contextmanager
def broker_process(*flags: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`tskafka broker` in another process, as a tutorial reader runs it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tskafka", "broker", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening" in line, line
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _kcat() -> str:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    return kcat


def _high_watermark(bootstrap: str, topic: str) -> int:
    c = confluent.Consumer({"bootstrap.servers": bootstrap, "group.id": _name("hw")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=REQUEST_TIMEOUT)[1]
    finally:
        c.close()


def test_the_tutorials_producers_create_their_topics():
    """Kafka's default auto.create.topics.enable: producing to a topic nobody
    made works, with 1 partition, for every client."""
    from kafka import KafkaProducer

    with broker_process() as (bootstrap, _):
        # confluent-kafka, as the tutorial writes it.
        reports = []
        producer = confluent.Producer({"bootstrap.servers": bootstrap})
        producer.produce("SomeTopic", b"value", callback=lambda e, m: reports.append(e))
        assert producer.flush(REQUEST_TIMEOUT) == 0
        assert reports == [None]
        # kafka-python, as its tutorial writes it.
        kp = KafkaProducer(bootstrap_servers=bootstrap)
        sent = kp.send("transactions", b'{"amount": 1}').get(timeout=REQUEST_TIMEOUT)
        assert (sent.topic, sent.partition, sent.offset) == ("transactions", 0, 0)
        kp.close()
        # tskafka's own producer.
        tk.Producer(bootstrap).send("tsk-new", pl.DataFrame({"a": [1, 2]}))
        topics = tk.Admin(bootstrap).list_topics()
        assert {"SomeTopic", "transactions", "tsk-new"} <= set(topics)
        md = producer.list_topics(timeout=REQUEST_TIMEOUT).topics
        assert len(md["SomeTopic"].partitions) == 1
        assert _high_watermark(bootstrap, "SomeTopic") == 1
        assert _high_watermark(bootstrap, "tsk-new") >= 1
        if shutil.which("kcat") or shutil.which("kafkacat"):
            kcat = _kcat()
            subprocess.run(
                [kcat, "-b", bootstrap, "-P", "-t", "kcat-new"],
                input=b"a\nb\n",
                check=True,
                timeout=30,
            )
            assert _high_watermark(bootstrap, "kcat-new") == 2


def test_metadata_creates_a_topic_only_when_the_client_allows_it():
    from kafka import KafkaConsumer

    def subscribe(topic: str, **conf) -> None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=_name("g"), **conf)
        consumer.subscribe([topic])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            consumer.poll(200)
        consumer.close()

    with broker_process() as (bootstrap, _):
        admin = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
        # A consumer that does not allow creation (librdkafka's default).
        consumer = confluent.Consumer({"bootstrap.servers": bootstrap, "group.id": _name("g")})
        consumer.subscribe(["never-made"])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            consumer.poll(0.2)
        consumer.close()
        # kafka-python's consumer allows it by default.
        subscribe("made-on-subscribe")
        topics = admin.list_topics(timeout=REQUEST_TIMEOUT).topics
        assert "made-on-subscribe" in topics
        assert "never-made" not in topics


def test_without_auto_create_a_missing_topic_is_a_clear_error():
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    with broker_process("--no-auto-create") as (bootstrap, proc):
        # The broker answers at once: the topic is unknown.
        admin = ck_admin.AdminClient({"bootstrap.servers": bootstrap})
        md = admin.list_topics("SomeTopic", timeout=REQUEST_TIMEOUT).topics["SomeTopic"]
        assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        # Each client gives up within its own timeout, with an error.
        reports = []
        producer = confluent.Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 3000})
        producer.produce("SomeTopic", b"value", callback=lambda e, m: reports.append(e))
        started = time.monotonic()
        producer.flush(REQUEST_TIMEOUT)
        assert len(reports) == 1 and reports[0] is not None
        assert time.monotonic() - started < REQUEST_TIMEOUT
        with pytest.raises(KafkaTimeoutError, match="metadata"):
            KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=3000).send(
                "transactions", b"{}"
            )
        with pytest.raises(tk.KafkaError, match="does not exist") as err:
            tk.Producer(bootstrap).send("tsk-new", pl.DataFrame({"a": [1]}))
        assert err.value.code == "UnknownTopicOrPartition"
        if shutil.which("kcat") or shutil.which("kafkacat"):
            out = subprocess.run(
                [_kcat(), "-b", bootstrap, "-P", "-t", "kcat-new", "-X", "message.timeout.ms=3000"],
                input=b"a\n",
                capture_output=True,
                check=False,
                timeout=30,
            )
            assert out.returncode != 0
        assert (
            admin.list_topics(timeout=REQUEST_TIMEOUT)
            .topics.keys()
            .isdisjoint({"SomeTopic", "transactions", "tsk-new", "kcat-new"})
        )
        assert proc.poll() is None


def _settle(future, allowed: tuple[int, ...] = ()):
    """A future's result; an error must be Kafka's answer (a KafkaException with
    a broker error code in `allowed`), never a timeout or a transport failure."""
    try:
        return future.result(timeout=REQUEST_TIMEOUT + 5)
    except KafkaException as e:
        error = e.args[0]
        assert error.code() in allowed, f"unexpected {error}"
        return error


def test_every_admin_request_is_answered_and_the_broker_keeps_serving():
    Acl = ck_admin.AclBinding
    AclFilter = ck_admin.AclBindingFilter
    R, P = ck_admin.ResourceType, ck_admin.ResourcePatternType
    Op, Perm = ck_admin.AclOperation, ck_admin.AclPermissionType
    with broker_process() as (bootstrap, proc):
        conf = {"bootstrap.servers": bootstrap}
        admin = ck_admin.AdminClient(conf)
        opts = {"request_timeout": REQUEST_TIMEOUT}
        topic, group = _name("admin"), _name("group")
        _settle(admin.create_topics([ck_admin.NewTopic(topic, 2, 1)], **opts)[topic])
        producer = confluent.Producer(conf)
        for i in range(10):
            producer.produce(topic, str(i).encode(), partition=i % 2)
        assert producer.flush(REQUEST_TIMEOUT) == 0
        consumer = confluent.Consumer({**conf, "group.id": group, "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert consumer.consume(5, REQUEST_TIMEOUT)
        consumer.commit(offsets=[TopicPartition(topic, 0, 3, "kept")], asynchronous=False)
        consumer.close()

        # Records and partitions.
        tp0 = TopicPartition(topic, 0, 2)
        deleted = _settle(admin.delete_records([tp0], **opts)[tp0])
        assert deleted.low_watermark == 2
        _settle(admin.create_partitions([ck_admin.NewPartitions(topic, 3)], **opts)[topic])
        offsets = admin.list_offsets(
            {TopicPartition(topic, 0): ck_admin.OffsetSpec.earliest()}, **opts
        )
        assert _settle(offsets[TopicPartition(topic, 0)]).offset == 2
        # Configs: replace, then change one key and append to a list.
        resource = ck_admin.ConfigResource(R.TOPIC, topic, set_config={"retention.ms": "60000"})
        _settle(admin.alter_configs([resource], **opts)[resource])
        resource = ck_admin.ConfigResource(
            R.TOPIC,
            topic,
            incremental_configs=[
                ck_admin.ConfigEntry(
                    "cleanup.policy",
                    "compact",
                    incremental_operation=ck_admin.AlterConfigOpType.APPEND,
                ),
                ck_admin.ConfigEntry(
                    "max.message.bytes",
                    "2000000",
                    incremental_operation=ck_admin.AlterConfigOpType.SET,
                ),
            ],
        )
        _settle(admin.incremental_alter_configs([resource], **opts)[resource])
        described = _settle(
            admin.describe_configs([ck_admin.ConfigResource(R.TOPIC, topic)], **opts)[
                ck_admin.ConfigResource(R.TOPIC, topic)
            ]
        )
        assert described["cleanup.policy"].value == "delete,compact"
        assert described["max.message.bytes"].value == "2000000"
        assert described["retention.ms"].value == "60000"
        broker_res = ck_admin.ConfigResource(R.BROKER, "1")
        assert "advertised.listeners" in _settle(
            admin.describe_configs([broker_res], **opts)[broker_res]
        )
        # ACLs: stored and matched as Kafka matches them.
        literal = Acl(R.TOPIC, topic, P.LITERAL, "User:alice", "*", Op.READ, Perm.ALLOW)
        prefixed = Acl(R.GROUP, "team-", P.PREFIXED, "User:bob", "*", Op.ALL, Perm.DENY)
        for f in admin.create_acls([literal, prefixed], **opts).values():
            _settle(f)
        bad = Acl(R.BROKER, "not-the-cluster", P.LITERAL, "User:x", "*", Op.ALTER, Perm.ALLOW)
        error = _settle(admin.create_acls([bad], **opts)[bad], (KafkaError.INVALID_REQUEST,))
        assert isinstance(error, KafkaError)
        everything = AclFilter(R.ANY, None, P.ANY, None, None, Op.ANY, Perm.ANY)
        assert sorted(_settle(admin.describe_acls(everything, **opts))) == sorted(
            [literal, prefixed]
        )
        applying = AclFilter(R.GROUP, "team-blue", P.MATCH, None, None, Op.ANY, Perm.ANY)
        assert _settle(admin.describe_acls(applying, **opts)) == [prefixed]
        only_prefixed = AclFilter(R.ANY, None, P.PREFIXED, None, None, Op.ANY, Perm.ANY)
        assert _settle(admin.delete_acls([only_prefixed], **opts)[only_prefixed]) == [prefixed]
        assert _settle(admin.describe_acls(everything, **opts)) == [literal]
        # Cluster, users, elections.
        cluster = _settle(admin.describe_cluster(**opts))
        assert [n.id for n in cluster.nodes] == [1]
        scram = admin.describe_user_scram_credentials(["alice"], **opts)
        assert _settle(scram["alice"], (KafkaError.RESOURCE_NOT_FOUND,)).code() == (
            KafkaError.RESOURCE_NOT_FOUND
        )
        upsert = ck_admin.UserScramCredentialUpsertion(
            "alice",
            ck_admin.ScramCredentialInfo(ck_admin.ScramMechanism.SCRAM_SHA_256, 4096),
            b"pw",
        )
        error = _settle(
            admin.alter_user_scram_credentials([upsert], **opts)["alice"],
            (KafkaError.UNSUPPORTED_SASL_MECHANISM,),
        )
        assert isinstance(error, KafkaError)
        elected = _settle(
            # (elect_leaders takes no request_timeout: confluent-kafka 2.x parses it wrongly)
            admin.elect_leaders(confluent.ElectionType.PREFERRED, [TopicPartition(topic, 0)]),
        )
        assert elected[TopicPartition(topic, 0)].code() == KafkaError.ELECTION_NOT_NEEDED
        # Topics and groups.
        topics = _settle(admin.describe_topics(confluent.TopicCollection([topic]), **opts)[topic])
        assert len(topics.partitions) == 3
        listed = _settle(admin.list_consumer_groups(**opts))
        assert group in {g.group_id for g in listed.valid}
        _settle(admin.describe_consumer_groups([group], **opts)[group])
        request = [confluent.ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
        committed = _settle(admin.list_consumer_group_offsets(request, **opts)[group])
        assert [(p.offset, p.metadata) for p in committed.topic_partitions] == [(3, "kept")]
        request = [confluent.ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1, 4)])]
        _settle(admin.alter_consumer_group_offsets(request, **opts)[group])
        _settle(admin.delete_consumer_groups([group], **opts)[group])
        _settle(
            admin.delete_topics(["no-such-topic"], **opts)["no-such-topic"],
            (KafkaError.UNKNOWN_TOPIC_OR_PART,),
        )

        # The broker still serves: a produce and a fetch.
        producer.produce(topic, b"after", partition=1)
        assert producer.flush(REQUEST_TIMEOUT) == 0
        consumer = confluent.Consumer({**conf, "group.id": _name("after")})
        consumer.assign([TopicPartition(topic, 1, 5)])
        [message] = consumer.consume(1, REQUEST_TIMEOUT)
        assert message.error() is None and message.value() == b"after"
        consumer.close()
        assert proc.poll() is None
        assert proc.stdout is not None
        proc.terminate()
        assert "panicked" not in proc.stdout.read()


def test_kcat_lists_metadata_and_queries_offsets_by_time(bootstrap, new_topic):
    kcat = _kcat()
    topic = new_topic(2)
    producer = confluent.Producer({"bootstrap.servers": bootstrap})
    for ts in (1_000, 2_000, 3_000):
        producer.produce(topic, b"x", partition=0, timestamp=ts)
    assert producer.flush(REQUEST_TIMEOUT) == 0
    listed = subprocess.run(
        [kcat, "-b", bootstrap, "-L", "-t", topic],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert f'topic "{topic}" with 2 partitions' in listed.stdout
    assert "broker 1 at 127.0.0.1" in listed.stdout
    queried = subprocess.run(
        [kcat, "-b", bootstrap, "-Q", "-t", f"{topic}:0:1500", "-t", f"{topic}:1:1500"],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert queried.returncode == 0, queried.stderr
    # The first record at or after 1500 ms is offset 1; partition 1 has none.
    assert f"{topic} [0] offset 1" in queried.stdout
    assert f"{topic} [1] offset -1" in queried.stdout


def test_kafka_python_admin_and_consumer_group(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    topic, group = _name("kp"), _name("kp-group")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    assert topic in admin.list_topics()
    [described] = admin.describe_topics([topic])
    assert len(described["partitions"]) == 2
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )["topic"][topic]
    assert configs["retention.ms"]["value"] == "-1"
    assert configs["cleanup.policy"]["value"] == "delete"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(20):
        producer.send(topic, str(i).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    seen = []
    for message in consumer:
        seen.append(int(message.value))
        if len(seen) == 20:
            break
    consumer.commit()
    assert sorted(seen) == list(range(20))
    listed = admin.list_groups()
    assert group in [g["group_id"] for g in listed], listed
    described = admin.describe_groups([group])[group]
    assert described["group_state"] == "Stable", described
    assert len(described["members"]) == 1
    committed = admin.list_group_offsets(group)[group]
    assert {tp.partition: meta.offset for tp, meta in committed.items()} == {0: 10, 1: 10}
    consumer.close()
    admin.delete_topics([topic])
    admin.close()
