"""Tests talk Kafka over a socket: to an embedded LocalBroker by default, or
to the cluster named by TSKAFKA_BOOTSTRAP (e.g. a real Kafka on localhost)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import polars as pl
import pytest

import tskafka as tk


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    external = os.environ.get("TSKAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with tk.LocalBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> tk.Admin:
    return tk.Admin(bootstrap)


@pytest.fixture
def new_topic(admin: tk.Admin):
    """Makes a topic with a random name: ``new_topic(partitions=3)``."""
    made: list[str] = []

    def make(partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topic(name, partitions=partitions)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            admin.delete_topic(name, missing_ok=True)
        except tk.TsKafkaError:
            pass


@pytest.fixture
def topic(new_topic) -> str:
    return new_topic(3)


def retail_frame(rows: int = 2_000, seed: int = 1) -> pl.DataFrame:
    """A retail-shaped frame with the awkward parts: non-ASCII text, negative
    quantities, nulls in Customer ID, datetimes, and a row number to sort by."""
    import numpy as np

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
            "Country": rng.choice(np.array(["United Kingdom", "France", "EIRE", "Österreich"]), rows),
        }
    )


def read_all(consumer: tk.Consumer, rows: int, timeout: float = 20.0) -> pl.DataFrame:
    """Polls until ``rows`` rows arrived (or fails after ``timeout``)."""
    import time

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
