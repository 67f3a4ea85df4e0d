"""tskafka.Config: its sources, their precedence, its errors, and every
client, replay and CLI command taking it against a real broker."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import polars as pl
import pytest
from helpers import read_all, retail_frame

import tskafka as tk

CONFLUENT_INI = """\
# As Confluent's Python examples write it.
[default]
bootstrap.servers={bootstrap}
security.protocol=PLAINTEXT
client.id=from-ini

[consumer]
group.id={group}
auto.offset.reset=earliest

[producer]
linger.ms=1

[schema-registry]
url=http://localhost:8081
"""


def write_ini(tmp_path, bootstrap: str, group: str = "ini-group") -> str:
    path = tmp_path / "config.ini"
    path.write_text(CONFLUENT_INI.format(bootstrap=bootstrap, group=group))
    return str(path)


def test_dict_and_keywords_become_librdkafka_strings():
    c = tk.Config(
        {"linger.ms": 5, "enable.idempotence": True, "acks": "all"},
        bootstrap_servers=["a:1", "b:2"],
    )
    assert dict(c) == {
        "linger.ms": "5",
        "enable.idempotence": "true",
        "acks": "all",
        "bootstrap.servers": "a:1,b:2",
    }
    assert c["linger.ms"] == "5" and len(c) == 4 and "acks" in c
    assert c.to_dict() == dict(c) and isinstance(c.to_dict(), dict)
    assert tk.Config(enable_auto_commit=False)["enable.auto.commit"] == "false"
    assert tk.Config({"x": None}) == tk.Config()
    with pytest.raises(tk.ConfigError, match="'linger.ms'.*not dict"):
        tk.Config({"linger.ms": {}})
    with pytest.raises(tk.ConfigError, match="property names"):
        tk.Config({1: "x"})  # type: ignore[dict-item]
    assert pickle.loads(pickle.dumps(c)) == c


def test_the_native_clients_take_only_strings():
    """Config owns turning values into librdkafka's strings: the native
    clients take strings only, and name the property that is not one."""
    native = tk._tskafka
    not_a_string = r'"linger.ms" must be a string, got int: .*tskafka.Config'
    for make in (native.Producer, native.Consumer, native.Admin):
        with pytest.raises(tk.ConfigError, match=not_a_string):
            make("127.0.0.1:1", {"linger.ms": 5})
    with pytest.raises(tk.ConfigError, match='"enable.idempotence" must be a string, got bool'):
        native.Replay("t", pl.DataFrame({"x": [1]}), "127.0.0.1:1", {"enable.idempotence": False})
    # The public classes pass every value through Config first.
    p = tk.Producer("127.0.0.1:1", {"linger.ms": 5, "enable.idempotence": False})
    try:
        assert '"enable.idempotence": "false", "linger.ms": "5"' in repr(p._native)
    finally:
        p.close()


def test_merging_later_wins_and_none_removes():
    base = tk.Config({"bootstrap.servers": "a:1", "linger.ms": 5, "acks": "all"})
    merged = base | {"linger.ms": 10, "acks": None}
    assert dict(merged) == {"bootstrap.servers": "a:1", "linger.ms": "10"}
    assert dict(base) == {"bootstrap.servers": "a:1", "linger.ms": "5", "acks": "all"}  # unchanged
    assert base.merged(linger_ms=1)["linger.ms"] == "1"
    assert isinstance({"x": "1"} | base, tk.Config)
    assert ({"linger.ms": "0"} | base)["linger.ms"] == "5"


def test_env_mapping():
    env = {
        "TSKAFKA_BOOTSTRAP_SERVERS": "a:1",
        "TSKAFKA_SASL_PASSWORD": "pw",
        "TSKAFKA_SASL_MECHANISMS": "PLAIN",
        "TSKAFKA_LOG_LEVEL": "3",
        "TSKAFKA_SSL__ENGINE__ID": "x",
        "TSKAFKA_EMPTY": "",
        "OTHER_LINGER_MS": "1",
    }
    c = tk.Config.from_env(environ=env)
    assert dict(c) == {
        "bootstrap.servers": "a:1",
        "sasl.password": "pw",
        "sasl.mechanisms": "PLAIN",
        "log_level": "3",
        "ssl_engine_id": "x",
    }
    assert tk.Config.from_env(environ={"TSKAFKA_BOOTSTRAP": "b:2"})["bootstrap.servers"] == "b:2"
    assert dict(tk.Config.from_env("APP_", environ={"APP_LINGER_MS": "7"})) == {"linger.ms": "7"}


def test_confluent_ini_sections(tmp_path):
    path = write_ini(tmp_path, "h:9092")
    c = tk.Config.from_ini(path)
    assert c["bootstrap.servers"] == "h:9092" and "group.id" not in c
    assert set(c.sections) == {"consumer", "producer"}  # [schema-registry] ignored
    consumer = c.section("consumer")
    assert consumer["group.id"] == "ini-group" and consumer["auto.offset.reset"] == "earliest"
    assert "url" not in consumer
    assert "group.id" not in c.section("producer") and c.section("producer")["linger.ms"] == "1"
    assert c.to_dict("consumer") == dict(consumer)
    assert dict(tk.Config.from_ini(path, "consumer")) == dict(consumer)
    assert tk.Config.from_ini(path, "consumer").sections == {}
    # The old entry point keeps working, now for a Config too.
    assert tk.load_config(path, "consumer") == dict(consumer)
    assert tk.load_config(c, "consumer") == dict(consumer)
    assert tk.load_config({"linger.ms": 1}) == {"linger.ms": "1"}
    assert tk.load_config(None) is None


def test_precedence_explicit_over_env_over_file(tmp_path):
    path = write_ini(tmp_path, "file:1")
    env = {"TSKAFKA_BOOTSTRAP_SERVERS": "env:1", "TSKAFKA_GROUP_ID": "env-group"}
    c = tk.Config.from_ini(path) | tk.Config.from_env(environ=env) | {"client.id": "explicit"}
    consumer = c.section("consumer")
    assert consumer["bootstrap.servers"] == "env:1"
    assert consumer["group.id"] == "env-group"  # over the file's [consumer] section
    assert consumer["auto.offset.reset"] == "earliest"
    assert consumer["client.id"] == "explicit"


def test_ini_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(
        tk.ConfigError, match=r"cannot read config file '.*nope\.ini': it does not exist"
    ):
        tk.Config.from_ini(tmp_path / "nope.ini")
    with pytest.raises(tk.ConfigError, match="does not exist"):
        tk.Producer(config=str(tmp_path / "nope.ini"))
    bad = tmp_path / "bad.ini"
    bad.write_text("[default]\nbootstrap.servers=a:1\n\nsasl.password hunter2\n")
    with pytest.raises(tk.ConfigError, match=r"bad\.ini' line 4: expected 'key = value'") as err:
        tk.Config.from_ini(bad)
    assert "hunter2" not in str(err.value)
    latin = tmp_path / "latin.ini"
    latin.write_bytes(b"client.id=caf\xe9\n")
    with pytest.raises(tk.ConfigError, match="not UTF-8"):
        tk.Config.from_ini(latin)
    with pytest.raises(tk.ConfigError, match="config.ini path, not int"):
        tk.Producer("a:1", config=5)  # type: ignore[arg-type]


def test_ini_multi_line_values_and_plain_properties_files(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text(
        "bootstrap.servers = a:1\nssl.ca.pem=-----BEGIN CERTIFICATE-----\n  MIIB\n  -----END CERTIFICATE-----\n"
    )
    c = tk.Config.from_ini(path)
    assert c["bootstrap.servers"] == "a:1"
    assert c["ssl.ca.pem"] == "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert "MIIB" not in repr(c)


def test_every_client_takes_a_config_round_trip(bootstrap, new_topic, tmp_path):
    topic = new_topic(2)
    config = tk.Config.from_ini(write_ini(tmp_path, bootstrap, group=f"g-{topic}"))
    df = retail_frame(500)
    admin = tk.Admin(config=config)
    assert topic in admin.list_topics()
    assert "from-ini" in repr(admin)
    p = tk.Producer(config=config)
    assert '"linger.ms": "1"' in repr(p)  # the [producer] section
    assert p.send(topic, df, key="StockCode").rows == 500
    # [consumer]: group.id and auto.offset.reset=earliest apply without arguments.
    with tk.Consumer(config=config, topics=[topic]) as c:
        assert f'"group.id": "g-{topic}"' in repr(c)
        assert read_all(c, 500).sort("row").equals(df)
        c.commit()
        ends = {(topic, d["partition"]): d["high"] for d in admin.describe_topic(topic)}
        assert c.committed() == ends
    # The ini path itself, and a dict, work the same.
    with tk.Consumer(config=tmp_path / "config.ini", partitions=[(topic, 0), (topic, 1)]) as c:
        assert len(read_all(c, 500)) == 500
    with tk.Consumer(
        config=dict(config.section("consumer")), topics=[topic], group_id=f"other-{topic}"
    ) as c:
        assert len(read_all(c, 500)) == 500


def test_explicit_arguments_win_over_the_config(bootstrap, new_topic, tmp_path):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, pl.DataFrame({"a": [1, 2, 3]}))
    config = tk.Config.from_ini(write_ini(tmp_path, "127.0.0.1:9", group="from-file"))
    # Explicit bootstrap over the file's; explicit group and offset over [consumer].
    with tk.Consumer(
        bootstrap, config, topics=[topic], group_id=f"x-{topic}", offset="latest"
    ) as c:
        shown = repr(c)
        assert bootstrap in shown and f'"group.id": "x-{topic}"' in shown
        assert '"auto.offset.reset": "latest"' in shown
        assert c.poll_frame(timeout=1.5) is None  # latest: the three rows are behind it
    with tk.Consumer(
        bootstrap,
        config | {"auto.offset.reset": "latest"},
        topics=[topic],
        offset="earliest",
        auto_commit=False,
    ) as c:
        assert '"enable.auto.commit": "false"' in repr(c)
        assert read_all(c, 3)["a"].sort().to_list() == [1, 2, 3]


def test_replay_takes_a_config(bootstrap, new_topic, tmp_path):
    topic = new_topic(1)
    config = tk.Config.from_ini(write_ini(tmp_path, bootstrap))
    r = tk.replay(retail_frame(300), topic, config=config, speed=None)
    assert r.wait(30).rows_delivered == 300
    r = tk.replay(retail_frame(200), topic, config=str(tmp_path / "config.ini"), speed=None)
    assert r.wait(30).rows_delivered == 200
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert len(read_all(c, 500)) == 500


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TSKAFKA_")}
    return subprocess.run(
        [sys.executable, "-m", "tskafka", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **(env or {})},
    )


def test_cli_commands_take_config_env_and_properties(bootstrap, new_topic, tmp_path):
    ini = write_ini(tmp_path, bootstrap, group="cli-ini-group")
    topic = f"cfg-{os.urandom(4).hex()}"
    made = cli("topics", "create", topic, "--partitions", "2", "--config", ini)
    assert made.returncode == 0, made.stderr
    try:
        listed = cli("topics", "list", "-c", ini)
        assert topic in listed.stdout.split()
        described = cli("topics", "describe", topic, "-c", ini)
        assert described.returncode == 0 and "'partition': 1" in described.stdout, described.stderr

        source = tmp_path / "rows.csv"
        pl.DataFrame({"n": list(range(50))}).write_csv(source)
        sent = cli("replay", str(source), topic, "--speed", "max", "--config", ini)
        assert sent.returncode == 0, sent.stderr
        assert "replayed 50 rows" in sent.stdout
        # The file's [consumer] section (auto.offset.reset=earliest) reads from the start.
        got = cli(
            "consume", topic, "--config", ini, "--max-rows", "50", "--idle-timeout", "15", "-q"
        )
        assert got.returncode == 0 and "consumed 50 rows" in got.stderr, got.stderr

        # $TSKAFKA_* beats the file; -X beats both.
        dead = tmp_path / "dead.ini"
        dead.write_text("[default]\nbootstrap.servers=127.0.0.1:9\n")
        via_env = cli("topics", "-c", str(dead), env={"TSKAFKA_BOOTSTRAP_SERVERS": bootstrap})
        assert topic in via_env.stdout.split(), via_env.stderr
        via_old_env = cli("topics", env={"TSKAFKA_BOOTSTRAP": bootstrap})
        assert topic in via_old_env.stdout.split(), via_old_env.stderr
        via_x = cli(
            "topics",
            "-c",
            str(dead),
            "-X",
            f"bootstrap.servers={bootstrap}",
            env={"TSKAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        )
        assert topic in via_x.stdout.split(), via_x.stderr
        wrong = cli("topics", "-X", "linger.ms")
        assert wrong.returncode == 2 and "-X expects property=value" in wrong.stderr
        unknown = cli("topics", "-b", bootstrap, "-X", "no.such.thing=1")
        assert unknown.returncode == 1 and "no.such.thing" in unknown.stderr
    finally:
        cli("topics", "delete", topic, "--missing-ok", "-b", bootstrap)


def test_to_dict_feeds_confluent_kafka(bootstrap, new_topic, tmp_path):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    config = tk.Config.from_ini(write_ini(tmp_path, bootstrap, group=f"ck-{topic}"))
    tk.Producer(config=config).send(topic, pl.DataFrame({"a": [1]}), format="json")
    consumer = confluent.Consumer(config.to_dict("consumer"))  # group.id, earliest from [consumer]
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b'{"a":1}'
    finally:
        consumer.close()
