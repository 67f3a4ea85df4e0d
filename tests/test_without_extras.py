"""tskafka without its optional extras: in a process where pandas, plotly and
anywidget cannot be imported, ``import tskafka``, the command line's help and
a round trip work, and what needs an extra says which one to install. (CI
also checks this in a fresh virtual environment.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = """
import argparse, contextlib, importlib.abc, io, sys

BLOCKED = {"pandas", "plotly", "anywidget"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())

import polars as pl
import tskafka as tk
import tskafka.aggregate, tskafka.datasets, tskafka.testing
from tskafka.cli import main, parser

(commands,) = [a.choices for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
for argv in ([], *([name] for name in commands)):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main([*argv, "--help"])
    except SystemExit as e:
        assert e.code == 0, (argv, e.code)
    else:
        raise AssertionError(f"{argv} --help did not exit")
print("help:", *commands)

try:
    import tskafka.live
except ImportError as e:
    print("live:", e)

with tk.LocalBroker() as broker:
    tk.Admin(broker.bootstrap_servers).create_topic("t")
    tk.Producer(broker.bootstrap_servers).send("t", pl.DataFrame({"i": [1, 2, 3]}))
    with tk.Consumer(broker.bootstrap_servers, topics=["t"], offset="earliest") as c:
        print("read:", c.poll_frame(timeout=10)["i"].to_list())
    try:
        tk.Consumer(broker.bootstrap_servers, topics=["t"], output="pandas")
    except ImportError as e:
        print("pandas:", e)
print("blocked:", sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED))
"""


def test_tskafka_works_without_pandas_plotly_and_anywidget():
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert set(lines["help"].split()) >= {
        "demo",
        "broker",
        "replay",
        "consume",
        "topics",
        "dataset",
    }
    assert 'pip install "tskafka[live]"' in lines["live"]
    assert lines["read"] == "[1, 2, 3]"
    assert 'pip install "tskafka[pandas]"' in lines["pandas"]
    assert lines["blocked"] == "[]"
