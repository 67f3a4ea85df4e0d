"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import polars as pl

import tskafka as tk


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def broker_cli(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``tskafka broker *args`` in a process of its own, its output (stdout and
    stderr) a line at a time; stopped with Ctrl+C, which must end it cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tskafka", "broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()


def numbered(start: int, stop: int) -> pl.DataFrame:
    """Rows ``i = start .. stop - 1``."""
    return pl.DataFrame({"i": range(start, stop)})


def retail_frame(rows: int = 2_000, seed: int = 1) -> pl.DataFrame:
    """A retail-shaped frame with the awkward parts: non-ASCII text, negative
    quantities, nulls in Customer ID, datetimes, and a row number to sort by."""
    rng = np.random.default_rng(seed)
    codes = np.array(["85123A", "22423", "84879", "47566", "POST", "M"])
    descriptions = {
        "85123A": "WHITE HANGING HEART T-LIGHT HOLDER",
        "22423": "REGENCY CAKESTAND 3 TIER",
        "84879": "ASSORTED COLOUR BIRD ORNAMENT",
        "47566": "PARTY BUNTING — “Fête” ünïcødé ✓",
        "POST": "POSTAGE",
        "M": "Manual",
    }
    code = rng.choice(codes, rows)
    quantity = rng.integers(-24, 48, rows)
    customer = rng.integers(12_346, 18_288, rows).astype(float)
    customer[rng.random(rows) < 0.23] = np.nan
    start = dt.datetime(2009, 12, 1, 7, 45)
    return pl.DataFrame(
        {
            "row": np.arange(rows, dtype=np.int64),
            "Invoice": [f"{'C' if q < 0 else ''}{489434 + i // 5}" for i, q in enumerate(quantity)],
            "StockCode": code,
            "Description": [descriptions[c] for c in code],
            "Quantity": quantity,
            "InvoiceDate": [start + dt.timedelta(minutes=int(i)) for i in range(rows)],
            "Price": np.round(rng.random(rows) * 20, 2),
            "Customer ID": pl.Series(customer).fill_nan(None).cast(pl.Int64),
            "Country": rng.choice(
                np.array(["United Kingdom", "France", "EIRE", "Österreich"]), rows
            ),
        }
    )


def read_all(consumer: tk.Consumer, rows: int, timeout: float = 20.0) -> pl.DataFrame:
    """Polls until ``rows`` rows arrived (or fails after ``timeout``)."""
    frames = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < rows:
        assert time.monotonic() < deadline, f"only {got} of {rows} rows arrived in {timeout}s"
        frame = consumer.poll_frame(max_rows=1_000_000, timeout=0.5)
        if frame is not None:
            frames.append(frame)
            got += len(frame)
    return pl.concat([f if isinstance(f, pl.DataFrame) else pl.from_arrow(f) for f in frames])


def as_plain_json(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` as tskafka reads back its plain JSON (no schema header): naive
    datetimes, written in UTC, come back labelled UTC."""
    return df.with_columns(
        pl.col(name).dt.replace_time_zone("UTC")
        for name, dtype in df.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    )
