"""The native CSV reader: encodings, datetime forms, bad rows, edge cases."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from helpers import read_all
from polars.testing import assert_frame_equal

import tskafka as tk
from tskafka import datasets


def write(tmp_path, text: str | bytes, name: str = "data.csv"):
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def test_latin1_file_reads_right(tmp_path):
    # The real Online Retail II CSV has Latin-1 bytes such as 0xE9 (é) and 0xA3 (£).
    path = write(
        tmp_path, "Description,Price\nCR\xc8ME BR\xdbL\xc9E,1.5\n\xa3 POSTAGE,2\n".encode("latin-1")
    )
    df = tk.read_csv(path)
    assert df["Description"].to_list() == ["CRÈME BRÛLÉE", "£ POSTAGE"]
    assert df["Price"].to_list() == [1.5, 2.0]
    assert tk.read_csv(path, encoding="latin-1").equals(df)
    with pytest.raises(tk.SchemaError, match=r"line 2 .*Description.*latin-1"):
        tk.read_csv(path, encoding="utf-8")
    # UTF-8 stays UTF-8 under 'auto'.
    path = write(tmp_path, "d\nCRÈME ✓\n", "utf8.csv")
    assert tk.read_csv(path)["d"].to_list() == ["CRÈME ✓"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2009-12-01 07:45:00", dt.datetime(2009, 12, 1, 7, 45)),
        ("2009-12-01T07:45:00.250", dt.datetime(2009, 12, 1, 7, 45, 0, 250_000)),
        ("12/1/2010 8:26", dt.datetime(2010, 12, 1, 8, 26)),
        ("2010-12-01 08:26", dt.datetime(2010, 12, 1, 8, 26)),
    ],
)
def test_common_datetime_forms(tmp_path, text, expected):
    path = write(tmp_path, f"t,v\n{text},1\n")
    df = tk.read_csv(path)
    assert df.schema["t"] == pl.Datetime("us")
    assert df["t"][0] == expected


def test_zoned_and_epoch_datetimes(tmp_path):
    path = write(tmp_path, "t,v\n2024-03-01T10:00:00+02:00,1\n2024-03-01T09:00:00+01:00,2\n")
    df = tk.read_csv(path)
    assert df.schema["t"] == pl.Datetime("us", "UTC")
    assert df["t"].to_list() == [dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)] * 2

    path = write(tmp_path, "ts,v\n1700000000,1\n1700000060,2\n", "s.csv")
    df = tk.read_csv(path, time_column="ts")
    assert df["ts"].to_list() == [
        dt.datetime(2023, 11, 14, 22, 13, 20),
        dt.datetime(2023, 11, 14, 22, 14, 20),
    ]
    # Without naming it the time column, an epoch is just a number.
    assert tk.read_csv(path).schema["ts"] == pl.Int64
    path = write(tmp_path, "ts,v\n1700000000123,1\n", "ms.csv")
    assert tk.read_csv(path, time_column="ts")["ts"][0] == dt.datetime(
        2023, 11, 14, 22, 13, 20, 123_000
    )
    assert tk.read_csv(path, time_column="ts", time_format="epoch_us")["ts"][0] == dt.datetime(
        1970, 1, 20, 16, 13, 20, 123
    )


def test_time_format_override(tmp_path):
    path = write(tmp_path, "when,v\n01.12.2009 07:45,1\n13.12.2009 18:00,2\n")
    with pytest.raises(tk.SchemaError, match="time_format"):
        tk.read_csv(path, time_column="when")
    df = tk.read_csv(path, time_column="when", time_format="%d.%m.%Y %H:%M")
    assert df["when"].to_list() == [dt.datetime(2009, 12, 1, 7, 45), dt.datetime(2009, 12, 13, 18)]
    with pytest.raises(tk.ConfigError, match="strftime"):
        tk.read_csv(path, time_column="when", time_format="%Q")


def test_bad_rows_error_with_line_or_skip(tmp_path):
    text = "a,b\n1,2\n3,4\n5\n6,7,8\n9,x\n10,11\n"
    path = write(tmp_path, text)
    with pytest.raises(tk.SchemaError, match="line 4 .*1 fields where the header has 2"):
        tk.read_csv(path)
    with pytest.warns(UserWarning, match="skipped 3 bad rows"):
        df = tk.read_csv(path, on_bad_rows="skip", dtypes={"b": "int64"})
    assert df.rows() == [(1, 2), (3, 4), (10, 11)]
    reader = tk._tskafka.CsvFile(str(path), on_bad_rows="skip", dtypes={"b": "int64"})
    list(reader)
    assert [line for line, _ in reader.bad_rows] == [4, 5, 6]
    assert "'x'" in reader.bad_rows[2][1] or '"x"' in reader.bad_rows[2][1]


def test_inferred_type_hint_names_the_fix(tmp_path):
    lines = ["Invoice,Quantity"] + [f"{489434 + i},1" for i in range(10)] + ["C489449,-1"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(tk.SchemaError, match=r"line 12 .*C489449.*Invoice.*first 4 rows.*dtypes="):
        tk.read_csv(path, chunk_rows=4)
    df = tk.read_csv(path, chunk_rows=4, dtypes={"Invoice": pl.Utf8})
    assert df["Invoice"][-1] == "C489449"


def test_empty_header_only_and_missing_columns(tmp_path):
    with pytest.raises(tk.SchemaError, match="empty"):
        tk.read_csv(write(tmp_path, b"", "empty.csv"))
    df = tk.read_csv(write(tmp_path, "a,b\n", "header.csv"))
    assert df.shape == (0, 2)
    with pytest.raises(
        tk.SchemaError, match=r'column "t" is not in .*x.csv; its columns are \["a", "b"\]'
    ):
        tk.read_csv(write(tmp_path, "a,b\n1,2\n", "x.csv"), time_column="t")
    with pytest.raises(tk.ConfigError, match="cannot open"):
        tk.read_csv(tmp_path / "nope.csv")


def test_quoted_fields_blank_lines_and_nulls(tmp_path):
    path = write(tmp_path, 'a,b,c\n"x, with comma",1,\n\n"say ""hi""",,2.5\n')
    df = tk.read_csv(path)
    assert df.rows() == [("x, with comma", 1, None), ('say "hi"', None, 2.5)]


def test_large_file_streams_in_chunks(tmp_path):
    df = datasets.online_retail(rows=50_000)
    path = tmp_path / "retail.csv"
    datasets.save(df, str(path))
    chunks = list(
        tk.iter_csv(path, chunk_rows=8_192, time_column="InvoiceDate", dtypes={"Invoice": str})
    )
    assert [c.height for c in chunks[:-1]] == [8_192] * (len(chunks) - 1)
    assert sum(c.height for c in chunks) == 50_000
    back = datasets.online_retail(str(path))
    assert back.equals(df)


def test_a_tsv_path_reads_tab_separated_in_read_csv_and_replay(tmp_path, bootstrap, new_topic):
    path = write(tmp_path, "sensor\tvalue\tnote\na\t1\tx, y\nb\t2\tz\n", name="readings.tsv")
    expected = pl.DataFrame({"sensor": ["a", "b"], "value": [1, 2], "note": ["x, y", "z"]})
    assert_frame_equal(tk.read_csv(path), expected)
    topic = new_topic(1)
    report = tk.replay(path, topic, bootstrap, speed=None).wait(timeout=20)
    assert report.rows_delivered == 2
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert_frame_equal(read_all(c, 2), expected)
