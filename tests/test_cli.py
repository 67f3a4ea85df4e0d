"""The command line end to end, each command in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from helpers import broker_cli, free_port

from tskafka import Admin, datasets


def tskafka(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tskafka", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TSKAFKA_BOOTSTRAP": ""},
    )


@pytest.fixture
def broker_process():
    port = free_port()
    with broker_cli("--port", str(port)) as proc:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line, (line, proc.stdout.read() if proc.poll() else "")
        yield f"127.0.0.1:{port}"


def test_broker_replay_consume_across_processes(broker_process, tmp_path):
    bootstrap = broker_process
    source = tmp_path / "sensors.csv"
    readings = datasets.sensors(rows=300, period=2.0)
    datasets.save(readings, str(source))

    made = tskafka("topics", "create", "readings", "--partitions", "2", "-b", bootstrap)
    assert made.returncode == 0, made.stderr
    listed = tskafka("topics", "-b", bootstrap)
    assert "readings" in listed.stdout.split()

    out = tmp_path / "received.csv"
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tskafka",
            "consume",
            "readings",
            "-b",
            bootstrap,
            "--from-beginning",
            "--max-rows",
            "300",
            "--out",
            str(out),
            "--group",
            "cli-test",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # 600 s of readings at 400x: about 1.5 s.
    sent = tskafka(
        "replay",
        str(source),
        "readings",
        "-b",
        bootstrap,
        "--time-column",
        "timestamp",
        "--speed",
        "400",
        "--key",
        "temp1",
    )
    assert sent.returncode == 0, sent.stderr
    assert "replayed 300 rows" in sent.stdout
    stdout, stderr = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, stderr
    assert "consumed 300 rows" in stderr
    assert "rows (total" in stdout  # each batch is printed with its receive time
    back = pl.read_csv(out, try_parse_dates=True).sort("timestamp")
    assert back.select(readings.columns).equals(readings)

    gone = tskafka("topics", "delete", "readings", "-b", bootstrap)
    assert gone.returncode == 0, gone.stderr
    assert "readings" not in tskafka("topics", "-b", bootstrap).stdout.split()


@pytest.mark.parametrize("flag", [[], ["--schema-header"]])
def test_replay_json_with_and_without_the_schema_header(bootstrap, new_topic, tmp_path, flag):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    source = tmp_path / "sensors.csv"
    datasets.save(datasets.sensors(rows=20, period=1.0), str(source))
    sent = tskafka(
        "replay", str(source), topic, "-b", bootstrap, "--speed", "max", "--format", "json", *flag
    )
    assert sent.returncode == 0, sent.stderr
    c = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "cli", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    m = c.poll(10)
    c.close()
    assert m is not None and m.error() is None
    assert set(json.loads(m.value())) == {"timestamp", "temp1", "temp2"}
    assert [k for k, _ in m.headers() or []] == (["tskafka.schema"] if flag else [])


def test_broker_schema_registry_client_cafile_asks_for_client_certificates(tmp_path):
    """--schema-registry-client-cafile: the registry takes a client certificate
    signed by that CA and refuses a connection without one or with another CA's."""
    pytest.importorskip("cryptography")
    httpx = pytest.importorskip("httpx")
    import ssl

    from test_security import Pki

    pki = Pki(tmp_path)
    tls = ["--certfile", str(pki.cert), "--keyfile", str(pki.key)]
    lone = tskafka("broker", "--port", "0", "--schema-registry-client-cafile", str(pki.ca))
    assert lone.returncode == 2, lone
    assert "--schema-registry, --certfile and --keyfile" in lone.stderr, lone.stderr
    no_tls = tskafka("broker", "--schema-registry", "--schema-registry-client-cafile", str(pki.ca))
    assert no_tls.returncode == 2 and "--certfile" in no_tls.stderr, no_tls.stderr

    broker_port, registry_port = free_port(), free_port()
    with broker_cli(
        "--port",
        str(broker_port),
        *tls,
        "--schema-registry",
        "--schema-registry-port",
        str(registry_port),
        "--schema-registry-client-cafile",
        str(pki.ca),
    ) as proc:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = f"https://127.0.0.1:{registry_port}"
        assert url in lines[2] and str(pki.ca) in lines[2], lines

        def subjects(cert: Path | None, key: Path | None) -> int:
            context = ssl.create_default_context(cafile=str(pki.ca))
            if cert is not None:
                context.load_cert_chain(str(cert), str(key))
            return httpx.get(f"{url}/subjects", verify=context, timeout=5).status_code

        assert subjects(pki.client_cert, pki.client_key) == 200
        for cert, key in [(None, None), (pki.other_client_cert, pki.other_client_key)]:
            with pytest.raises(httpx.HTTPError):
                subjects(cert, key)
        # The Kafka listener does not ask for a client certificate.
        kafka = {
            "bootstrap.servers": f"127.0.0.1:{broker_port}",
            "security.protocol": "SSL",
            "ssl.ca.location": str(pki.ca),
        }
        Admin(config=kafka).create_topic("cli-mtls")


def test_clear_messages_and_exit_codes(tmp_path):
    missing = tskafka("replay", str(tmp_path / "nope.csv"), "t", "--speed", "max")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = tskafka("replay", "--nope")
    assert bad.returncode == 2
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    no_time = tskafka("replay", str(path), "t", "--speed", "10")
    assert no_time.returncode == 2 and "--time-column" in no_time.stderr
    started = time.monotonic()
    down = tskafka("topics", "-b", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert down.returncode == 1
    assert "could not reach" in down.stderr or "reach" in down.stderr, down.stderr
    assert time.monotonic() - started < 20
    cfg = tmp_path / "config.ini"
    cfg.write_text("[default]\nbootstrap.servers=127.0.0.1:1\nsasl.password=SENTINEL-SECRET\n")
    bad_cfg = tskafka("topics", "--config", str(cfg), "--timeout", "1")
    assert bad_cfg.returncode == 1
    assert "SENTINEL-SECRET" not in bad_cfg.stderr + bad_cfg.stdout


def test_dataset_command_writes_files(tmp_path):
    out = tmp_path / "retail.parquet"
    done = tskafka("dataset", "retail", str(out), "--rows", "1000")
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(out).equals(datasets.online_retail(rows=1000))


@pytest.mark.parametrize("which", ["retail", "sensors"])
def test_demo_runs(which):
    args = ["demo", which, "--rows", "20000" if which == "retail" else "30"]
    done = tskafka(*args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if which == "retail":
        assert "revenue by StockCode" in done.stdout and "consumed 20,000" in done.stdout
    else:
        assert "30 readings consumed" in done.stdout
