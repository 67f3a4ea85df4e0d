"""Datasets to replay: a synthetic Online Retail II log and IoT sensor readings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

RETAIL_ROWS = 1_067_371
_START = dt.datetime(2009, 12, 1)
_END = dt.datetime(2011, 12, 10)
_WORDS = [
    "WHITE",
    "HANGING",
    "HEART",
    "T-LIGHT",
    "HOLDER",
    "RED",
    "RETROSPOT",
    "CAKE",
    "STAND",
    "JUMBO",
    "BAG",
    "VINTAGE",
    "PAISLEY",
    "LUNCH",
    "BOX",
    "SET",
    "OF",
    "3",
    "REGENCY",
    "TEACUP",
    "CHRISTMAS",
    "GLASS",
    "BAUBLE",
    "PINK",
    "POLKADOT",
    "MUG",
    "ASSORTED",
    "COLOUR",
    "BIRD",
    "ORNAMENT",
    "PARTY",
    "BUNTING",
    "DOORMAT",
    "UNION",
    "FLAG",
    "NAPKINS",
    "LANTERN",
    "ZINC",
    "WIRE",
    "BASKET",
    "CERAMIC",
    "JAR",
    "GARDEN",
    "KNEELING",
    "PAD",
    "WOODEN",
    "FRAME",
    "ANTIQUE",
    "HOT",
    "WATER",
    "BOTTLE",
]
_COUNTRIES = [
    ("United Kingdom", 0.915),
    ("EIRE", 0.017),
    ("Germany", 0.016),
    ("France", 0.013),
    ("Netherlands", 0.005),
    ("Spain", 0.004),
    ("Switzerland", 0.003),
    ("Belgium", 0.003),
    ("Portugal", 0.002),
    ("Australia", 0.002),
    ("Channel Islands", 0.0016),
    ("Italy", 0.0015),
    ("Norway", 0.0013),
    ("Sweden", 0.0013),
    ("Cyprus", 0.0011),
    ("Finland", 0.001),
    ("Austria", 0.0009),
    ("Denmark", 0.0008),
    ("Greece", 0.0006),
    ("Japan", 0.0006),
    ("Poland", 0.0005),
    ("USA", 0.0005),
    ("Israel", 0.0004),
    ("Unspecified", 0.0007),
    ("Singapore", 0.0003),
    ("Iceland", 0.0003),
    ("Canada", 0.0002),
    ("Malta", 0.0002),
    ("Hong Kong", 0.0003),
    ("United Arab Emirates", 0.0004),
    ("Lithuania", 0.0001),
    ("Bahrain", 0.0001),
    ("RSA", 0.0001),
    ("Brazil", 0.0001),
    ("Lebanon", 0.0001),
    ("Korea", 0.0001),
    ("Thailand", 0.0001),
    ("West Indies", 0.0001),
    ("Nigeria", 0.0001),
    ("Czech Republic", 0.0001),
]


def online_retail(path: str | None = None, rows: int = RETAIL_ROWS, seed: int = 0) -> pl.DataFrame:
    """The UCI Online Retail II transactions log.

    With ``path``, the real file (CSV) is read with proper dtypes. Without,
    a deterministic synthetic log of ``rows`` rows with the same schema and
    shape: Dec 2009 - Dec 2011 in business hours, invoices of several lines,
    cancellations (invoice "C...", negative quantity), ~23% missing Customer
    ID, a few thousand stock codes with stable descriptions and prices, ~40
    countries with the UK dominant.
    """
    if path is not None:
        return _read_retail(path)
    rng = np.random.default_rng(seed)
    n_codes = 4_000
    code_numbers = rng.choice(np.arange(20_000, 90_000), n_codes, replace=False)
    suffix = rng.choice(np.array(["", "", "", "A", "B", "C"]), n_codes)
    codes = np.array([f"{c}{s}" for c, s in zip(code_numbers, suffix, strict=True)])
    words = np.array(_WORDS)
    descriptions = np.array(
        [" ".join(rng.choice(words, int(k))) for k in rng.integers(2, 6, n_codes)]
    )
    prices = np.round(np.exp(rng.normal(0.9, 0.8, n_codes)), 2)
    popularity = 1.0 / np.arange(1, n_codes + 1) ** 0.8
    popularity /= popularity.sum()

    lines = rng.geometric(1 / 20, size=rows // 10 + 10)
    ends = np.cumsum(lines)
    n_invoices = int(np.searchsorted(ends, rows)) + 1
    lines = lines[:n_invoices]
    lines[-1] -= int(ends[n_invoices - 1] - rows)
    invoice_of_row = np.repeat(np.arange(n_invoices), lines)

    span_days = (_END - _START).days
    day = np.sort(rng.integers(0, span_days, n_invoices))
    seconds = rng.integers(7 * 3600, 20 * 3600, n_invoices) // 60 * 60
    inv_time = np.sort((day.astype(np.int64) * 86_400 + seconds) * 1_000_000)
    cancelled = rng.random(n_invoices) < 0.02
    number = 489_434 + np.arange(n_invoices)
    invoice = np.char.add(np.where(cancelled, "C", ""), number.astype(str))
    customer = rng.integers(12_346, 18_288, n_invoices).astype(np.float64)
    customer[rng.random(n_invoices) < 0.23] = np.nan
    names = [c for c, _ in _COUNTRIES]
    weights = np.array([w for _, w in _COUNTRIES])
    country = rng.choice(np.array(names), n_invoices, p=weights / weights.sum())

    code_idx = rng.choice(n_codes, rows, p=popularity)
    quantity = np.minimum(rng.geometric(0.25, rows), 480).astype(np.int64)
    quantity = np.where(cancelled[invoice_of_row], -quantity, quantity)
    timestamps = inv_time[invoice_of_row] + int(_START.replace(tzinfo=dt.UTC).timestamp() * 1e6)
    # Strings are built once per stock code / invoice and gathered per row.
    per_code = pl.DataFrame({"StockCode": codes, "Description": descriptions, "Price": prices})
    per_invoice = pl.DataFrame(
        {
            "Invoice": invoice,
            "Customer ID": pl.Series(customer).fill_nan(None).cast(pl.Int64),
            "Country": country,
        }
    )
    code_rows = per_code[code_idx]
    invoice_rows = per_invoice[invoice_of_row]
    return pl.DataFrame(
        {
            "Invoice": invoice_rows["Invoice"],
            "StockCode": code_rows["StockCode"],
            "Description": code_rows["Description"],
            "Quantity": quantity,
            "InvoiceDate": pl.Series(timestamps).cast(pl.Datetime("us")),
            "Price": code_rows["Price"],
            "Customer ID": invoice_rows["Customer ID"],
            "Country": invoice_rows["Country"],
        }
    )


_RETAIL_DTYPES = {
    "Invoice": "str",
    "StockCode": "str",
    "Description": "str",
    "Quantity": "int64",
    "Price": "float64",
    "Customer ID": "float64",
    "Country": "str",
}


def _read_retail(path: str) -> pl.DataFrame:
    """The real file: the UCI CSV (not UTF-8: read as Latin-1 where needed) or the XLSX."""
    if str(path).lower().endswith((".xlsx", ".xls")):
        try:
            sheets = pl.read_excel(path, sheet_id=0)
        except ModuleNotFoundError as e:
            from .exceptions import ConfigError

            raise ConfigError(
                f"reading {path!r} needs an Excel reader ({e.name}): pip install fastexcel, "
                "or pass the CSV version"
            ) from None
        df = pl.concat(list(sheets.values()), how="vertical_relaxed")
        df = df.with_columns(pl.col("Invoice").cast(pl.Utf8), pl.col("StockCode").cast(pl.Utf8))
    else:
        from ._csv import read_csv

        df = read_csv(path, time_column="InvoiceDate", dtypes=_RETAIL_DTYPES)
    return df.with_columns(
        pl.col("InvoiceDate").cast(pl.Datetime("us")), pl.col("Customer ID").cast(pl.Int64)
    )


def sensors(
    rows: int = 1_000,
    period: float = 2.0,
    start: dt.datetime | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """IoT readings every ``period`` seconds: timestamp, temp1 (20-39), temp2 (10-29)."""
    rng = np.random.default_rng(seed)
    t0 = start or dt.datetime(2024, 1, 1)
    steps = np.arange(rows, dtype=np.int64) * int(period * 1e6)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(steps).cast(pl.Duration("us")) + t0,
            "temp1": rng.integers(20, 40, rows),
            "temp2": rng.integers(10, 30, rows),
        }
    )


def irregular_series(
    rows: int = 1_000,
    max_gap: float = 5.0,
    start: dt.datetime | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """The ``timestamp,value`` series of the replay tutorials: a random walk
    sampled at irregular gaps of 0.1 to ``max_gap`` seconds."""
    rng = np.random.default_rng(seed)
    t0 = start or dt.datetime(2024, 1, 1)
    gaps = np.round(rng.uniform(0.1, max_gap, rows) * 1e6).astype(np.int64)
    gaps[0] = 0
    return pl.DataFrame(
        {
            "timestamp": pl.Series(np.cumsum(gaps)).cast(pl.Duration("us")) + t0,
            "value": np.round(50 + np.cumsum(rng.normal(0, 1, rows)), 3),
        }
    )


def save(frame: pl.DataFrame, path: str) -> None:
    """Write a dataset to ``.csv`` or ``.parquet`` (the replay command reads both)."""
    lower = str(path).lower()
    if lower.endswith((".parquet", ".pq")):
        frame.write_parquet(path)
    elif lower.endswith(".csv"):
        frame.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    else:
        from .exceptions import ConfigError

        raise ConfigError(f"cannot write {path!r}: use a .csv or .parquet file name")


def revenue_by_stock_code(frame: Any, top: int = 10) -> pl.DataFrame:
    """Revenue (Quantity * Price) by StockCode, largest first."""
    df = frame if isinstance(frame, pl.DataFrame) else pl.DataFrame(pl.from_arrow(frame))
    return (
        df.group_by("StockCode")
        .agg((pl.col("Quantity") * pl.col("Price")).sum().alias("revenue"))
        .sort("revenue", descending=True)
        .head(top)
    )
