"""TLS and SASL/PLAIN end to end: a LocalBroker with a certificate signed by a
CA the test makes, and users; tskafka and confluent-kafka connect with the
right settings, and wrong ones fail fast with a clear message."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
from helpers import broker_cli, free_port, read_all, retail_frame

import tskafka as tk

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PASSWORD = "pw-4f1c9e-sentinel"
WRONG = "wrong-7d2a1b-sentinel"
# A wrong setting must fail well within this many seconds (the calls' timeouts are 10 to 30 s).
FAST = 6.0


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _client_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str
) -> tuple[bytes, bytes]:
    """A client certificate (TLS client auth) signed by the CA: its PEM and its key's PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _pem(cert), key_pem


class Pki:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, a
    client certificate it signed (``client_cert``/``client_key``), and an
    unrelated CA with a client certificate of its own
    (``other_client_cert``/``other_client_key``), as PEM files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        ca_key, ca_cert = _ca("tskafka test CA")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(_pem(ca_cert))
        self.other_ca = directory / "other-ca.pem"
        other_ca_key, other_ca_cert = _ca("some other CA")
        self.other_ca.write_bytes(_pem(other_ca_cert))
        self.client_cert, self.client_key = directory / "client.pem", directory / "client.key"
        cert_pem, key_pem = _client_cert(ca_key, ca_cert, "tskafka test client")
        self.client_cert.write_bytes(cert_pem)
        self.client_key.write_bytes(key_pem)
        self.other_client_cert = directory / "other-client.pem"
        self.other_client_key = directory / "other-client.key"
        cert_pem, key_pem = _client_cert(other_ca_key, other_ca_cert, "someone else")
        self.other_client_cert.write_bytes(cert_pem)
        self.other_client_key.write_bytes(key_pem)
        self.cert = directory / "server.pem"
        self.cert.write_bytes(_pem(server) + _pem(ca_cert))  # the chain after the certificate
        self.key = directory / "server.key"
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki):
    with tk.LocalBroker(
        certfile=pki.cert, keyfile=pki.key, users={"alice": PASSWORD, "bob": "other-pw"}
    ) as b:
        yield b


def config(broker, pki, *, password: str = PASSWORD, ca: Path | None = None) -> dict[str, str]:
    return broker.client_config(username="alice", password=password, ca_location=ca or pki.ca)


def _topic(broker, pki, partitions: int = 3) -> str:
    name = f"sec-{uuid.uuid4().hex[:10]}"
    tk.Admin(config=config(broker, pki)).create_topic(name, partitions=partitions)
    return name


def test_broker_reports_its_security_and_hides_passwords(broker, pki):
    assert broker.security_protocol == "SASL_SSL"
    shown = repr(broker)
    assert "SASL_SSL" in shown and "alice" in shown
    assert PASSWORD not in shown and "other-pw" not in shown
    c = broker.client_config(username="alice")
    assert c == {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "alice",
        "ssl.ca.location": str(pki.cert.resolve()),
    }


def test_right_credentials_round_trip_through_a_group(broker, pki):
    topic = _topic(broker, pki)
    assert topic in tk.Admin(config=config(broker, pki)).list_topics()
    df = retail_frame(3_000)
    p = tk.Producer(config=config(broker, pki))
    report = p.send(topic, df, key="StockCode", timestamp="InvoiceDate")
    assert report.rows == len(df)
    p.close()
    c = tk.Consumer(
        config=config(broker, pki), topics=[topic], group_id=f"g-{topic}", offset="earliest"
    )
    got = read_all(c, len(df)).sort("row")
    c.close()
    assert got.equals(df)


def test_a_topic_scan_over_sasl_ssl(broker, pki):
    """A scan of a secured cluster (read through librdkafka): all of it,
    and a time window looked up as offsets."""
    topic = _topic(broker, pki)
    df = retail_frame(3_000)
    tk.Producer(config=config(broker, pki)).send(
        topic, df, timestamp="InvoiceDate", rows_per_message=100
    )
    got = tk.read_topic(topic, config=config(broker, pki)).drop(
        "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key"
    )
    assert got.sort("row").equals(df)
    start, end = df["InvoiceDate"][1_000], df["InvoiceDate"][2_000]
    stats = tk.ScanStats()
    window = (
        tk.scan_topic(topic, config=config(broker, pki), time_column="InvoiceDate", stats=stats)
        .filter(pl.col("InvoiceDate").is_between(start, end, closed="left"))
        .collect()
    )
    expected = df.filter(pl.col("InvoiceDate").is_between(start, end, closed="left"))
    assert window.select(df.columns).sort("row").equals(expected)
    assert stats.messages < 20  # of 30


def test_confluent_kafka_produces_and_consumes_over_sasl_ssl(broker, pki):
    confluent = pytest.importorskip("confluent_kafka")
    topic = _topic(broker, pki, partitions=1)
    settings = config(broker, pki)
    p = confluent.Producer(settings)
    for i in range(50):
        p.produce(topic, value=b'{"n": %d, "StockCode": "85123A"}' % i)
    assert p.flush(20) == 0
    # tskafka reads what confluent-kafka wrote, and confluent-kafka reads it back.
    c = tk.Consumer(config=settings, topics=[topic], offset="earliest")
    assert read_all(c, 50).sort("n")["n"].to_list() == list(range(50))
    c.close()
    cc = confluent.Consumer(
        {**settings, "group.id": f"cf-{topic}", "auto.offset.reset": "earliest"}
    )
    cc.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 50 and time.monotonic() < deadline:
        m = cc.poll(0.5)
        if m is not None:
            assert m.error() is None, m.error()
            seen.append(m.value())
    cc.close()
    assert len(seen) == 50


def test_confluent_layout_config_ini(broker, pki, tmp_path):
    ini = tmp_path / "client.ini"
    group = f"ini-{uuid.uuid4().hex[:8]}"
    ini.write_text(
        "[default]\n"
        f"bootstrap.servers={broker.bootstrap_servers}\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanisms=PLAIN\n"
        "sasl.username=alice\n"
        f"sasl.password={PASSWORD}\n"
        f"ssl.ca.location={pki.ca}\n"
        "\n[consumer]\n"
        f"group.id={group}\n"
        "auto.offset.reset=earliest\n"
    )
    topic = f"ini-{uuid.uuid4().hex[:10]}"
    tk.Admin(config=tk.load_config(ini)).create_topic(topic, partitions=2)
    df = retail_frame(500)
    p = tk.Producer(config=ini)
    assert p.send(topic, df, format="json").rows == 500
    assert PASSWORD not in repr(p)
    p.close()
    c = tk.Consumer(config=ini, topics=[topic])
    got = read_all(c, 500)
    c.commit()
    c.close()
    assert sorted(got["row"].to_list()) == list(range(500))


def _fails_fast(call, *needles: str) -> tk.KafkaError:
    started = time.monotonic()
    with pytest.raises(tk.KafkaError) as info:
        call()
    took = time.monotonic() - started
    message = str(info.value)
    assert took < FAST, f"took {took:.1f}s: {message}"
    assert WRONG not in message and PASSWORD not in message, message
    for needle in needles:
        assert needle in message, message
    return info.value


def test_wrong_password_fails_fast_with_a_clear_error(broker, pki):
    topic = _topic(broker, pki)
    bad = config(broker, pki, password=WRONG)
    hints = ("SASL authentication failed", broker.bootstrap_servers, "sasl.password")
    # A fresh client for each call: each sees the failure on its own.
    p = tk.Producer(config=bad)
    e = _fails_fast(lambda: p.send(topic, retail_frame(10), timeout=30), *hints)
    assert e.code == "Authentication" and not e.retriable
    assert WRONG not in repr(p)
    p.close()
    _fails_fast(lambda: tk.Consumer(config=bad, topics=[topic], timeout=30), *hints)
    _fails_fast(lambda: tk.Consumer(config=bad, partitions=[(topic, 0)], timeout=30), *hints)
    _fails_fast(lambda: tk.Admin(config=bad).create_topic("never", timeout=30), *hints)
    _fails_fast(lambda: tk.Admin(config=bad).list_topics(timeout=30), *hints)
    _fails_fast(lambda: tk.Admin(config=bad).describe_topic(topic, timeout=30), *hints)
    # An unknown user is refused the same way.
    nobody = {**config(broker, pki), "sasl.username": "mallory"}
    _fails_fast(lambda: tk.Admin(config=nobody).list_topics(timeout=30), *hints)


def test_wrong_ca_fails_fast_with_a_clear_error(broker, pki):
    topic = _topic(broker, pki)
    bad = config(broker, pki, ca=pki.other_ca)
    hints = (
        "TLS handshake with",
        broker.bootstrap_servers,
        "ssl.ca.location",
        "certificate verify failed",
    )
    p = tk.Producer(config=bad)
    e = _fails_fast(lambda: p.send(topic, retail_frame(10), timeout=30), *hints)
    assert e.code == "SSL"
    p.close()
    _fails_fast(lambda: tk.Consumer(config=bad, topics=[topic], timeout=30), *hints)
    _fails_fast(lambda: tk.Admin(config=bad).list_topics(timeout=30), *hints)


def test_plaintext_client_to_a_tls_broker_fails_within_its_timeout(broker, pki):
    # librdkafka only logs the broker closing a plaintext connection, so this
    # is an error after the call's timeout, not at once.
    plain = {"bootstrap.servers": broker.bootstrap_servers}
    started = time.monotonic()
    with pytest.raises(tk.KafkaError, match="security settings"):
        tk.Admin(config=plain).list_topics(timeout=2)
    assert time.monotonic() - started < 2 + FAST


def test_ssl_only_broker(pki):
    with tk.LocalBroker(certfile=pki.cert, keyfile=pki.key) as b:
        assert b.security_protocol == "SSL"
        settings = b.client_config(ca_location=pki.ca)
        assert settings["security.protocol"] == "SSL" and "sasl.username" not in settings
        tk.Admin(config=settings).create_topic("ssl-only", partitions=1)
        df = retail_frame(200)
        tk.Producer(config=settings).send("ssl-only", df)
        c = tk.Consumer(config=settings, partitions=[("ssl-only", 0)], offset="earliest")
        assert read_all(c, 200).sort("row").equals(df)
        c.close()
        # The broker's certfile holds the chain up to the CA, so it works as the CA file too.
        assert tk.Admin(config=b.client_config()).list_topics() == ["ssl-only"]


def test_sasl_plaintext_broker(pki):
    with tk.LocalBroker(users={"alice": PASSWORD}) as b:
        assert b.security_protocol == "SASL_PLAINTEXT"
        good = b.client_config(password=PASSWORD)
        assert good["sasl.username"] == "alice"
        tk.Admin(config=good).create_topic("sp", partitions=1)
        _fails_fast(
            lambda: tk.Admin(config={**good, "sasl.password": WRONG}).list_topics(timeout=30),
            "SASL authentication failed",
        )


def test_bad_tls_files_are_config_errors(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(tk.ConfigError, match="junk.pem.*no certificate"):
        tk.LocalBroker(certfile=junk, keyfile=pki.key)
    with pytest.raises(tk.ConfigError, match="junk.pem.*private key"):
        tk.LocalBroker(certfile=pki.cert, keyfile=junk)
    with pytest.raises(tk.ConfigError, match="missing.pem"):
        tk.LocalBroker(certfile=tmp_path / "missing.pem", keyfile=pki.key)
    # A key that does not belong to the certificate.
    other = tmp_path / "other.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(tk.ConfigError, match="server.pem.*other.key"):
        tk.LocalBroker(certfile=pki.cert, keyfile=other)
    with pytest.raises(tk.ConfigError, match="both") as only_cert:
        tk.LocalBroker(certfile=pki.cert)
    assert "  " not in str(only_cert.value), str(only_cert.value)
    with pytest.raises(tk.ConfigError, match="password"):
        tk.LocalBroker(users={"alice": ""})


def test_cli_broker_with_tls_and_users_file(pki, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text(f"# name:password\nalice:{PASSWORD}\n")
    port = free_port()
    with broker_cli(
        "--port",
        str(port),
        "--certfile",
        str(pki.cert),
        "--keyfile",
        str(pki.key),
        "--users",
        str(users),
    ) as proc:
        first = proc.stdout.readline()
        assert f"127.0.0.1:{port} (SASL_SSL)" in first, first
        second = proc.stdout.readline()
        assert "sasl.username=alice" in second and PASSWORD not in second, second
        settings = {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": PASSWORD,
            "ssl.ca.location": str(pki.ca),
        }
        tk.Admin(config=settings).create_topic("cli-sec")
        assert tk.Admin(config=settings).list_topics() == ["cli-sec"]


def test_cli_users_file_errors_do_not_show_passwords(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text(f"alice {PASSWORD}\n")
    out = subprocess.run(
        [sys.executable, "-m", "tskafka", "broker", "--port", "0", "--users", str(users)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out
    assert "line 1" in out.stderr and PASSWORD not in out.stderr + out.stdout


def test_round_trip_is_exact(broker, pki):
    # Polars frames survive TLS unchanged, including non-ASCII text.
    topic = _topic(broker, pki, partitions=1)
    df = retail_frame(100)
    tk.Producer(config=config(broker, pki)).send(topic, df)
    c = tk.Consumer(config=config(broker, pki), partitions=[(topic, 0)], offset="earliest")
    assert isinstance(got := read_all(c, 100), pl.DataFrame) and got.equals(df)
    c.close()
