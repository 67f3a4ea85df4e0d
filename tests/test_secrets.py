"""A sentinel password set in every secret property never shows: not in a
repr, an exception (with its chained causes and traceback), a log record,
a subprocess's stdout/stderr, nor any CLI command's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

import tskafka as tk
from tskafka.testing import MockCluster

SENTINEL = "S3ntinel-" + uuid.uuid4().hex

#: Credentials this build of librdkafka takes, each holding the sentinel
#: (OAuth/OIDC properties are refused: it is built without libcurl).
SECRETS = {
    "sasl.password": SENTINEL,
    "ssl.key.password": SENTINEL + "-key",
    "ssl.keystore.password": SENTINEL + "-keystore",
    "sasl.username": "user-" + SENTINEL,
}

SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", **SECRETS}


def assert_clean(text: str, where: str = "") -> None:
    assert SENTINEL not in text, f"the secret leaked in {where}: {text[:2000]}"


def everything_about(e: BaseException) -> str:
    """An exception as anything could print it: message, repr, args,
    attributes, and the traceback with every chained cause and context."""
    parts = [str(e), repr(e), repr(e.args), repr(vars(e)) if hasattr(e, "__dict__") else ""]
    parts += traceback.format_exception(e)
    for chained in (e.__cause__, e.__context__):
        if chained is not None:
            parts.append(everything_about(chained))
    return "\n".join(parts)


def failure(
    call: Callable[[], Any], expected: type[BaseException] = tk.TsKafkaError
) -> BaseException:
    with pytest.raises(expected) as info:
        call()
    assert_clean(everything_about(info.value), f"{type(info.value).__name__}")
    return info.value


@pytest.fixture(autouse=True)
def debug_logging(caplog):
    """Every log record at DEBUG, from any logger, is checked after each test."""
    caplog.set_level(logging.DEBUG)
    yield
    assert_clean(caplog.text, "logging")
    for record in caplog.records:
        assert_clean(repr(record.args), "logging args")


def test_config_repr_hides_every_secret(tmp_path):
    c = tk.Config(
        {"bootstrap.servers": "a:1", **SECRETS, "ssl.key.pem": "-----BEGIN-----\n" + SENTINEL}
    )
    for text in (repr(c), str(c), f"{c}", repr([c]), repr(c.section("consumer"))):
        assert_clean(text, "Config repr")
        assert "'sasl.password': '***'" in text and "'bootstrap.servers': 'a:1'" in text
    ini = tmp_path / "config.ini"
    ini.write_text(
        f"[default]\nbootstrap.servers=a:1\nsasl.password={SENTINEL}\n"
        f"[consumer]\nssl.key.password={SENTINEL}\nssl.key.pem=-----BEGIN-----\n  {SENTINEL}\n"
    )
    from_file = tk.Config.from_ini(ini)
    assert_clean(repr(from_file), "Config repr with sections")
    assert "consumer={" in repr(from_file)
    env = tk.Config.from_env(environ={"TSKAFKA_SASL_PASSWORD": SENTINEL})
    assert_clean(repr(env) + repr(env | from_file), "env Config repr")
    assert env["sasl.password"] == SENTINEL  # hidden only when shown


def test_client_reprs(bootstrap, new_topic):
    topic = new_topic(1)
    # A plaintext broker ignores the SASL/SSL credentials: every client works.
    config = tk.Config({"security.protocol": "PLAINTEXT", **SECRETS})
    admin = tk.Admin(bootstrap, config)
    p = tk.Producer(bootstrap, config)
    report = p.send(topic, pl.DataFrame({"a": [1, 2]}))
    c = tk.Consumer(bootstrap, config, topics=[topic], offset="earliest")
    bg = c.start()
    r = tk.replay(pl.DataFrame({"a": [3]}), topic, bootstrap, config, speed=None)
    r.wait(30)
    for obj in (config, admin, p, report, c, bg, bg.status, r, r.progress):
        assert_clean(repr(obj), type(obj).__name__)
        assert_clean(str(obj), type(obj).__name__)
    bg.stop()
    c.close()
    p.close()
    assert_clean(repr(c) + repr(p), "closed clients")


def test_bad_property_values_and_unknown_properties():
    failure(lambda: tk.Producer("127.0.0.1:9", {**SASL, "acks": "bogus"}), tk.ConfigError)
    failure(
        lambda: tk.Consumer("127.0.0.1:9", {**SASL, "fetch.wait.max.ms": "soon"}), tk.ConfigError
    )
    failure(lambda: tk.Admin("127.0.0.1:9", {**SASL, "sasl.mechanisms": "NOPE"}), tk.ConfigError)
    # Java's JAAS line is not a librdkafka property; neither is a misspelt key.
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="{SENTINEL}";'
    e = failure(lambda: tk.Producer("127.0.0.1:9", {"sasl.jaas.config": jaas}), tk.ConfigError)
    assert "sasl.jaas.config" in str(e)
    e = failure(lambda: tk.Producer("127.0.0.1:9", {"sasl.passwrod": SENTINEL}), tk.ConfigError)
    assert "sasl.passwrod" in str(e)
    failure(
        lambda: tk.Producer(
            "127.0.0.1:9",
            {
                "security.protocol": "SSL",
                "ssl.key.pem": SENTINEL,
                "ssl.certificate.pem": "not a cert",
            },
        ),
        tk.ConfigError,
    )
    e = failure(
        lambda: tk.Producer("127.0.0.1:9", {**SASL, "sasl.oauthbearer.client.secret": SENTINEL}),
        tk.ConfigError,
    )
    assert "sasl.oauthbearer.client.secret" in str(e)
    failure(lambda: tk.Producer(config=SASL), tk.ConfigError)  # no bootstrap
    failure(lambda: tk.Consumer("127.0.0.1:9", SASL, offset="middle"), tk.ConfigError)
    failure(
        lambda: tk.replay(pl.DataFrame({"a": [1]}), "t", "127.0.0.1:9", {**SASL, "acks": "x"}),
        tk.ConfigError,
    )
    failure(lambda: tk.Config({"sasl.password": object()}), tk.ConfigError)


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text(f"[default]\nbootstrap.servers=a:1\nsasl.password {SENTINEL}\n")
    failure(lambda: tk.Config.from_ini(bad), tk.ConfigError)
    failure(lambda: tk.Producer(config=bad), tk.ConfigError)
    pem = tmp_path / "pem.ini"
    pem.write_text(f"ssl.key.pem=-----BEGIN-----\n{SENTINEL}\n")  # continuation not indented
    failure(lambda: tk.Config.from_ini(pem), tk.ConfigError)


def test_sasl_and_ssl_against_a_plaintext_broker(bootstrap, new_topic):
    topic = new_topic(1)
    frame = pl.DataFrame({"a": [1]})
    for config in (SASL, {"security.protocol": "SSL", **SECRETS}):
        failure(
            lambda c=config: tk.Producer(bootstrap, c).send(topic, frame, timeout=3), tk.KafkaError
        )
        failure(
            lambda c=config: tk.Consumer(bootstrap, c, topics=[topic], timeout=3), tk.KafkaError
        )
        failure(lambda c=config: tk.Admin(bootstrap, c).list_topics(timeout=3), tk.TsKafkaError)
        failure(
            lambda c=config: tk.replay(frame, topic, bootstrap, c, speed=None, timeout=3).wait(30)
        )
    # Reading assigned partitions: the client's own error reports (auth, transport).
    try:
        c = tk.Consumer(bootstrap, SASL, partitions=[(topic, 0)], timeout=3)
    except tk.TsKafkaError as e:
        assert_clean(everything_about(e), "assign error")
        return
    try:
        for _ in range(3):
            try:
                c.poll_frame(timeout=1.0)
            except tk.TsKafkaError as e:
                assert_clean(everything_about(e), "poll_frame error")
    finally:
        c.close()
    failure(c.poll_frame, tk.ClosedError)


def test_produce_error_and_unreachable_cluster():
    with MockCluster(brokers=1) as cluster:
        cluster.create_topic("t", partitions=1)
        cluster.request_errors("Produce", ["TopicAuthorizationFailed"])
        p = tk.Producer(cluster.bootstrap_servers, {**SECRETS, "linger.ms": 0})
        e = failure(lambda: p.send("t", pl.DataFrame({"a": range(10)})), tk.ProduceError)
        assert e.rows_failed == 10
        p.close()
        assert_clean(repr(p), "closed producer")
    failure(
        lambda: tk.Producer("127.0.0.1:9", SASL).send("t", pl.DataFrame({"a": [1]}), timeout=2),
        tk.KafkaError,
    )


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TSKAFKA_")}
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **(env or {})},
    )


def test_librdkafka_debug_output_of_a_process(bootstrap, new_topic):
    """librdkafka's debug=all dumps the configuration: nothing of it may
    reach the process's stdout/stderr or Python logging."""
    topic = new_topic(1)
    script = textwrap.dedent(f"""
        import logging, polars as pl, tskafka as tk
        logging.basicConfig(level=logging.DEBUG)
        bootstrap, topic, secrets = {bootstrap!r}, {topic!r}, {SECRETS!r}
        plain = {{"security.protocol": "PLAINTEXT", "debug": "all", **secrets}}
        tk.Producer(bootstrap, plain).send(topic, pl.DataFrame({{"a": [1]}}))
        with tk.Consumer(bootstrap, plain, topics=[topic], offset="earliest") as c:
            assert c.poll_frame(timeout=10) is not None
        print(tk.Admin(bootstrap, plain).list_topics())
        sasl = {{**plain, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN"}}
        try:
            tk.Producer(bootstrap, sasl).send(topic, pl.DataFrame({{"a": [1]}}), timeout=3)
        except tk.KafkaError as e:
            print("failed as expected:", e)
        tk.Producer(bootstrap, {{**sasl, "acks": "bogus"}})  # uncaught: the traceback goes to stderr
    """)
    done = run("-c", script)
    assert done.returncode == 1 and "ConfigError" in done.stderr, done.stderr
    assert "failed as expected" in done.stdout and topic in done.stdout
    assert_clean(done.stdout, "stdout")
    assert_clean(done.stderr, "stderr")


def test_cli_output(bootstrap, new_topic, tmp_path):
    topic = new_topic(1)
    ini = tmp_path / "config.ini"
    body = "".join(f"{k}={v}\n" for k, v in SECRETS.items())
    ini.write_text(
        f"[default]\nbootstrap.servers={bootstrap}\nsecurity.protocol=PLAINTEXT\n{body}"
        f"[consumer]\nauto.offset.reset=earliest\nsasl.password={SENTINEL}\n"
    )
    sasl_ini = tmp_path / "sasl.ini"
    sasl_ini.write_text(
        f"[default]\nbootstrap.servers={bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanisms=PLAIN\n{body}"
    )
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_text(f"[default]\nbootstrap.servers={bootstrap}\n{SENTINEL}\n")
    csv = tmp_path / "rows.csv"
    pl.DataFrame({"n": range(20)}).write_csv(csv)

    def tskafka(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = run("-m", "tskafka", *args, "--timeout", "3", env=env)
        assert_clean(done.stdout, f"stdout of tskafka {' '.join(args)}")
        assert_clean(done.stderr, f"stderr of tskafka {' '.join(args)}")
        return done

    commands = [
        ("topics", "list"),
        ("topics", "create", f"{topic}-new"),
        ("topics", "describe", topic),
        ("topics", "delete", f"{topic}-new", "--missing-ok"),
        ("replay", str(csv), topic, "--speed", "max"),
        ("consume", topic, "--max-rows", "20", "--idle-timeout", "5"),
    ]
    for command in commands:
        ok = tskafka(*command, "--config", str(ini))
        assert ok.returncode == 0, (command, ok.stderr)
        for broken in (sasl_ini, bad_ini):
            failed = tskafka(*command, "--config", str(broken))
            assert failed.returncode == 1, (command, broken, failed.stderr)
        # Unreachable, with the secrets given as -X properties.
        failed = tskafka(
            *command,
            "-b",
            "127.0.0.1:9",
            "-X",
            f"sasl.password={SENTINEL}",
            "-X",
            f"ssl.key.password={SENTINEL}",
            "-X",
            "security.protocol=SASL_PLAINTEXT",
        )
        assert failed.returncode == 1, (command, failed.stderr)
        failed = tskafka(*command, "-X", SENTINEL, env={"TSKAFKA_SASL_PASSWORD": SENTINEL})
        assert failed.returncode == 2, (command, failed.stderr)
    ok = tskafka("topics", "list", "-b", bootstrap, env={"TSKAFKA_SASL_PASSWORD": SENTINEL})
    assert ok.returncode == 0 and topic in ok.stdout.split()
    failed = tskafka(
        "topics",
        "list",
        "-b",
        bootstrap,
        env={
            "TSKAFKA_SASL_PASSWORD": SENTINEL,
            "TSKAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "TSKAFKA_SASL_MECHANISMS": "PLAIN",
            "TSKAFKA_ACKS": "bogus",
        },
    )
    assert failed.returncode == 1 and "acks" in failed.stderr
    for command in ([], ["topics"], ["replay"], ["consume"], ["broker"], ["dataset"], ["demo"]):
        assert tskafka(*command, "--help").returncode == 0
    for command in (["topics"], ["replay"], ["consume"]):
        assert tskafka(*command, "-X", f"sasl.password={SENTINEL}", "--help").returncode == 0


def test_cli_scrubs_every_line_of_a_multi_line_secret(bootstrap, new_topic, tmp_path):
    """A PEM key in config.ini is scrubbed line by line: a line of it shown
    alone (say, pasted as an argument by mistake) shows as *** too."""
    topic = new_topic(1)
    key_lines = [f"MII{SENTINEL}{n}{uuid.uuid4().hex}" for n in range(3)]
    pem = ["-----BEGIN PRIVATE KEY-----", *key_lines, "-----END PRIVATE KEY-----"]
    ini = tmp_path / "config.ini"
    ini.write_text(
        f"[default]\nbootstrap.servers={bootstrap}\nsecurity.protocol=PLAINTEXT\n"
        f"ssl.key.pem={pem[0]}\n" + "".join(f"    {line}\n" for line in pem[1:])
    )
    csv = tmp_path / "rows.csv"
    pl.DataFrame({"n": range(5)}).write_csv(csv)

    def tskafka(*args: str) -> subprocess.CompletedProcess[str]:
        done = run("-m", "tskafka", *args, "--config", str(ini), "--timeout", "3")
        for line in key_lines:
            assert line not in done.stdout + done.stderr, f"tskafka {' '.join(args)}: {done.stderr}"
        return done

    listed = tskafka("topics", "list")
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stderr
    missing = tskafka("replay", key_lines[0], topic)
    assert missing.returncode == 2 and "no such file: ***" in missing.stderr, missing.stderr
    bad_speed = tskafka("replay", str(csv), topic, "--time-column", "n", "--speed", key_lines[1])
    assert bad_speed.returncode == 2 and "got '***'" in bad_speed.stderr, bad_speed.stderr
    unknown = tskafka("topics", "describe", key_lines[2])
    assert unknown.returncode == 1 and "***" in unknown.stderr, unknown.stderr


def test_schema_registry_credentials_never_show():
    """basic.auth.user.info: right, wrong, and against a registry that is down."""
    pytest.importorskip("fastavro")
    users = {"alice": SENTINEL}
    with tk.LocalBroker(users=users, schema_registry=True) as b:
        sasl = {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": SENTINEL,
        }
        right = {
            **sasl,
            "schema.registry.url": b.schema_registry_url,
            "basic.auth.user.info": f"alice:{SENTINEL}",
        }
        wrong = {**right, "basic.auth.user.info": f"alice:wrong-{SENTINEL}"}
        topic = f"sr-secret-{uuid.uuid4().hex[:6]}"
        tk.Admin(b.bootstrap_servers, sasl).create_topic(topic)
        p = tk.Producer(b.bootstrap_servers, right)
        p.send(topic, pl.DataFrame({"a": [1]}), format="avro")
        c = tk.Consumer(
            b.bootstrap_servers, right, topics=[topic], offset="earliest", format="avro"
        )
        assert c.poll_frame(timeout=10)["a"].to_list() == [1]
        for obj in (p, c, tk.Config(right)):
            assert_clean(repr(obj), type(obj).__name__)
        assert "'basic.auth.user.info': '***'" in repr(tk.Config(right))
        c.close()
        failure(
            lambda: tk.Producer(b.bootstrap_servers, wrong).send(
                topic, pl.DataFrame({"a": [1]}), format="avro"
            ),
            tk.ConfigError,
        )

        def read_wrong() -> None:
            with tk.Consumer(
                b.bootstrap_servers, wrong, topics=[topic], offset="earliest", format="avro"
            ) as c:
                for _ in range(20):
                    c.poll_frame(timeout=1.0)

        failure(read_wrong, tk.ConfigError)
        down = {**right, "schema.registry.url": "http://127.0.0.1:9"}
        failure(
            lambda: tk.Producer(b.bootstrap_servers, down).send(
                topic, pl.DataFrame({"a": [1]}), format="avro"
            ),
            tk.KafkaError,
        )
        failure(
            lambda: tk.Producer(b.bootstrap_servers, {**right, "basic.auth.user.info": SENTINEL}),
            tk.ConfigError,
        )


def test_schema_registry_credentials_in_the_url_never_show(tmp_path):
    """https://user:password@host in schema.registry.url: right, wrong, down,
    malformed, and through the command line."""
    pytest.importorskip("fastavro")
    with tk.LocalBroker(users={"alice": SENTINEL}, schema_registry=True) as b:
        sasl = b.client_config(password=SENTINEL)
        url = b.schema_registry_url
        right = {**sasl, "schema.registry.url": url.replace("//", f"//alice:{SENTINEL}@")}
        wrong = {**sasl, "schema.registry.url": url.replace("//", f"//alice:wrong-{SENTINEL}@")}
        topic = f"sr-url-{uuid.uuid4().hex[:6]}"
        tk.Admin(config=sasl).create_topic(topic)
        p = tk.Producer(config=right)
        p.send(topic, pl.DataFrame({"a": [1]}), format="avro")
        c = tk.Consumer(config=right, topics=[topic], offset="earliest", format="avro")
        assert c.poll_frame(timeout=10)["a"].to_list() == [1]
        shown = repr(tk.Config(right))
        for obj, text in (
            (p, repr(p)),
            (c, repr(c)),
            ("Config", shown),
            ("str", str(tk.Config(right))),
        ):
            assert_clean(text, str(obj))
        assert f"'schema.registry.url': '{url.replace('//', '//***@')}'" in shown, shown
        c.close()
        failure(
            lambda: tk.Producer(config=wrong).send(topic, pl.DataFrame({"a": [1]}), format="avro"),
            tk.ConfigError,
        )
        inherit = {
            **sasl,
            "schema.registry.url": url,
            "basic.auth.credentials.source": "SASL_INHERIT",
        }
        tk.Producer(config=inherit).send(topic, pl.DataFrame({"a": [2]}), format="avro")
        for bad_url in (
            f"http://alice:{SENTINEL}@127.0.0.1:9",  # down
            f"ftp://alice:{SENTINEL}@127.0.0.1:9",  # not http
            f"http://alice:{SENTINEL}@127.0.0.1:notaport",
        ):
            e = failure(
                lambda bad_url=bad_url: tk.Producer(
                    config={**sasl, "schema.registry.url": bad_url}
                ).send(topic, pl.DataFrame({"a": [1]}), format="avro"),
            )
            assert "127.0.0.1" in str(e)
        failure(
            lambda: tk.Producer(config={**right, "basic.auth.user.info": f"alice:{SENTINEL}"}),
            tk.ConfigError,
        )
        csv = tmp_path / "rows.csv"
        pl.DataFrame({"n": range(5)}).write_csv(csv)
        bad = f"http://alice:{SENTINEL}@127.0.0.1:9"
        done = run(
            "-m",
            "tskafka",
            "replay",
            str(csv),
            topic,
            "-b",
            b.bootstrap_servers,
            "--format",
            "avro",
            "--timeout",
            "3",
            "-X",
            f"schema.registry.url={bad}",
            *[a for k, v in sasl.items() if k != "bootstrap.servers" for a in ("-X", f"{k}={v}")],
        )
        assert done.returncode == 1, done.stderr
        assert "127.0.0.1:9" in done.stderr, done.stderr
        assert_clean(done.stdout + done.stderr, "tskafka replay")
