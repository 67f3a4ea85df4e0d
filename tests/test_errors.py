"""Bad input and unreachable brokers give clear exceptions, quickly."""

from __future__ import annotations

import os
import signal
import threading
import time

import polars as pl
import pytest
from helpers import read_all, retail_frame

import tskafka as tk


def test_exception_tree_has_one_root():
    for name in [
        "ConfigError",
        "SchemaError",
        "KafkaError",
        "ProduceError",
        "ConsumeError",
        "DecodeError",
        "ClosedError",
        "TimeoutError",
        "BrokerError",
    ]:
        assert issubclass(getattr(tk, name), tk.TsKafkaError), name


def test_unknown_topic_is_named_with_the_fix(strict_bootstrap):
    with pytest.raises(tk.KafkaError, match="create_topic") as err:
        tk.Producer(strict_bootstrap).send("no-such-topic", retail_frame(5))
    assert err.value.code == "UnknownTopicOrPartition"
    assert "no-such-topic" in str(err.value)
    with pytest.raises(tk.KafkaError, match="no-such-topic"):
        tk.Consumer(strict_bootstrap, topics=["no-such-topic"])


def test_dead_broker_fails_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(tk.KafkaError, match="could not reach") as err:
        tk.Producer("127.0.0.1:9").send("t", retail_frame(5), timeout=2.0)
    assert time.monotonic() - started < 6
    assert err.value.retriable
    started = time.monotonic()
    with pytest.raises(tk.KafkaError, match="could not reach"):
        tk.Consumer("127.0.0.1:9", topics=["t"], timeout=2.0)
    assert time.monotonic() - started < 6
    with pytest.raises(tk.TsKafkaError):
        tk.Admin("127.0.0.1:9").list_topics(timeout=1.0)


def test_wrong_column_names_and_types(bootstrap, topic):
    p = tk.Producer(bootstrap)
    df = retail_frame(5)
    with pytest.raises(tk.SchemaError, match=r'"StockCod".*"StockCode"'):
        p.send(topic, df, key="StockCod")
    with pytest.raises(tk.SchemaError, match="timestamp column"):
        p.send(topic, df, timestamp="Country")
    nested = pl.DataFrame({"x": [[1, 2]]})
    with pytest.raises(tk.SchemaError, match="supported: bool"):
        p.send(topic, nested, format="json")
    p.send(topic, nested, format="arrow")  # Arrow carries any type
    with pytest.raises(TypeError, match="cannot send a list"):
        p.send(topic, [1, 2, 3])
    with pytest.raises(tk.ConfigError, match="unknown format"):
        p.send(topic, df, format="xml")


def test_bad_config_is_a_config_error_without_the_secret():
    with pytest.raises(tk.ConfigError) as err:
        tk.Producer("127.0.0.1:9", {"no.such.property": 1, "sasl.password": "s3cr3t-sentinel"})
    assert "no.such.property" in str(err.value)
    assert "s3cr3t-sentinel" not in str(err.value)
    p = tk.Producer("127.0.0.1:9", {"sasl.password": "s3cr3t-sentinel"})
    assert "s3cr3t-sentinel" not in repr(p)
    with pytest.raises(tk.ConfigError, match="bootstrap"):
        tk.Producer()


def test_garbage_bytes_raise_decode_error_naming_the_message(bootstrap, new_topic):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    p = tk.Producer(bootstrap)
    p.send(topic, pl.DataFrame({"a": [1, 2]}))
    raw = confluent.Producer({"bootstrap.servers": bootstrap})
    raw.produce(topic, b"\x00\x01\x02 not kafka data", partition=0)
    raw.produce(
        topic, b'{"a": "not an int"}', partition=0, headers={"tskafka.schema": b'[["a","Int64"]]'}
    )
    raw.flush(10)
    p.send(topic, pl.DataFrame({"a": [3]}))

    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        rows, errors = [], []
        deadline = time.monotonic() + 20
        while len(rows) < 3 and time.monotonic() < deadline:
            try:
                frame = c.poll_frame(timeout=0.5)
            except tk.DecodeError as e:
                errors.append(e)
                continue
            if frame is not None:
                rows.extend(frame["a"].to_list())
    assert sorted(rows) == [1, 2, 3]
    assert [(e.topic, e.partition, e.offset) for e in errors] == [(topic, 0, 1), (topic, 0, 2)]
    assert f"{topic}[0]@1" in str(errors[0])
    assert errors[0].payload == b"\x00\x01\x02 not kafka data"

    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", on_error="skip") as c:
        back = read_all(c, 3)
        assert sorted(back["a"].to_list()) == [1, 2, 3]
        assert [b[2] for b in c.bad_messages] == [1, 2]


def test_ctrl_c_during_poll_frame_returns_within_a_second(bootstrap, topic):
    with tk.Consumer(bootstrap, topics=[topic]) as c:
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            c.poll_frame(timeout=30.0)
        took = time.monotonic() - started - 0.5
        assert took < 1.0, took
        # Still usable afterwards.
        assert c.poll_frame(timeout=0.1) is None


def test_closed_clients_say_so(bootstrap, topic):
    p = tk.Producer(bootstrap)
    p.close()
    with pytest.raises(tk.ClosedError):
        p.send(topic, retail_frame(1))
    c = tk.Consumer(bootstrap, topics=[topic])
    c.close()
    with pytest.raises(tk.ClosedError):
        c.poll_frame()
    b = tk.LocalBroker()
    b.close()
    with pytest.raises(tk.ClosedError):
        _ = b.bootstrap_servers


def test_local_broker_port_in_use(bootstrap):
    port = int(bootstrap.rsplit(":", 1)[1])
    if os.environ.get("TSKAFKA_BOOTSTRAP"):
        pytest.skip("needs the embedded broker")
    with pytest.raises(tk.BrokerError, match=f"port {port}"):
        tk.LocalBroker(port=port)


def test_partition_out_of_range(bootstrap, topic):
    with pytest.raises(tk.ConfigError, match="partitions 0..2"):
        tk.Producer(bootstrap).send(topic, retail_frame(1), partition=7)


def test_file_storage_keeps_data_across_restarts(tmp_path):
    path = tmp_path / "broker" / "kafka.db"
    with tk.LocalBroker(storage=str(path)) as broker:
        tk.Admin(broker.bootstrap_servers).create_topic("kept", partitions=2)
        tk.Producer(broker.bootstrap_servers).send("kept", retail_frame(300), key="StockCode")
    assert path.exists()
    with tk.LocalBroker(storage=str(path)) as broker:
        assert "kept" in tk.Admin(broker.bootstrap_servers).list_topics()
        with tk.Consumer(broker.bootstrap_servers, topics=["kept"], offset="earliest") as c:
            assert read_all(c, 300).sort("row").equals(retail_frame(300))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"])
def test_tls_and_sasl_are_compiled_in(mechanism):
    # librdkafka refuses these settings at creation when built without TLS or SASL.
    config = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": mechanism,
        "sasl.username": "key",
        "sasl.password": "s3cr3t-sentinel",
    }
    if mechanism == "OAUTHBEARER":
        config = {"security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism}
    p = tk.Producer("127.0.0.1:9", config)
    assert "s3cr3t-sentinel" not in repr(p)
    p.close(timeout=0)


def test_confluent_config_ini(tmp_path):
    ini = tmp_path / "config.ini"
    ini.write_text(
        "[default]\nbootstrap.servers=127.0.0.1:9\nsecurity.protocol=SASL_SSL\n"
        "sasl.mechanisms=PLAIN\nsasl.username=key\nsasl.password=s3cr3t-sentinel\n"
        "[consumer]\ngroup.id=from-ini\nauto.offset.reset=earliest\n"
    )
    assert tk.load_config(ini, "consumer")["group.id"] == "from-ini"
    assert "group.id" not in tk.load_config(ini, "producer")
    p = tk.Producer(config=ini)
    assert "127.0.0.1:9" in repr(p) and "s3cr3t-sentinel" not in repr(p)
    with pytest.raises(tk.ConfigError, match="cannot read config file"):
        tk.Producer(config=tmp_path / "missing.ini")


NO_THREADS = """
import os, resource
import tskafka as tk
consumer = tk.Consumer("127.0.0.1:1")
os.setuid(65534)  # RLIMIT_NPROC binds only a user without CAP_SYS_RESOURCE
status = open("/proc/self/status").read()
threads = int(status.split("Threads:")[1].split()[0])
resource.setrlimit(resource.RLIMIT_NPROC, (threads, threads))
try:
    consumer.start(buffer_rows=10)
except tk.TsKafkaError as e:
    print(type(e).__name__, e)
"""


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0 or not os.path.exists("/proc/self/status"),
    reason="needs root on Linux to run a process that may start no more threads",
)
def test_a_thread_that_cannot_start_is_not_a_config_error():
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", NO_THREADS], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    # The base class: neither a config problem nor one of the other kinds.
    assert run.stdout.startswith(
        "TsKafkaError the process could not start a thread for a background consumer: "
        "Resource temporarily unavailable"
    ), run.stdout + run.stderr
