"""Bad input, tried on purpose: every case gives a clear tskafka exception
naming the value and the fix, or is documented as accepted (empty frames,
null keys, rows over the message size limit split). Poison messages on a
topic raise DecodeError naming topic/partition/offset, or with
on_error="skip" are kept in bad_messages while every good row flows on."""

from __future__ import annotations

import io
import pathlib
import re
import time

import polars as pl
import pyarrow as pa
import pytest
from helpers import numbered, read_all, retail_frame

import tskafka as tk

CORPUS = pathlib.Path(__file__).parent / "fuzz_corpus"


def ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def high_watermarks(admin: tk.Admin, topic: str) -> list[int]:
    return [p["high"] for p in admin.describe_topic(topic)]


@pytest.fixture
def raw(bootstrap):
    """A plain Kafka producer for payloads tskafka would never write."""
    confluent = pytest.importorskip("confluent_kafka")
    producers = [confluent.Producer({"bootstrap.servers": bootstrap})]

    def send(topic: str, payload: bytes, headers: dict[str, bytes] | None = None) -> None:
        producers[0].produce(topic, payload, partition=0, headers=headers)
        assert producers[0].flush(10) == 0

    yield send
    # Freed now, not at interpreter exit, where it would log the broker it lost.
    producers.clear()


# -- producing -----------------------------------------------------------------


def test_wrong_or_missing_column_names_list_the_columns(bootstrap, topic):
    p = tk.Producer(bootstrap)
    df = retail_frame(3)
    for kwargs, role, name in [
        ({"key": "stockcode"}, "key", "stockcode"),
        ({"key": ["Country", "Nope"]}, "key", "Nope"),
        ({"timestamp": "InvoiceDat"}, "timestamp", "InvoiceDat"),
    ]:
        with pytest.raises(tk.SchemaError) as err:
            p.send(topic, df, **kwargs)
        message = str(err.value)
        assert f'{role} column "{name}" is not in the frame' in message
        assert '"StockCode"' in message and '"InvoiceDate"' in message  # what there is
    assert high_watermarks(tk.Admin(bootstrap), topic) == [0, 0, 0]


def test_unsupported_dtypes_name_the_column_and_the_supported_ones(bootstrap, topic, tmp_path):
    p = tk.Producer(bootstrap)
    for column in [
        pl.Series("nested", [[1, 2]]),
        pl.Series("record", [{"a": 1}]),
        pl.Series("blob", [b"\x00"]),
        pl.Series("amount", [1]).cast(pl.Decimal(10, 2)),
    ]:
        with pytest.raises(tk.SchemaError) as err:
            p.send(topic, pl.DataFrame([column]), format="json")
        message = str(err.value)
        assert f'column "{column.name}" has type' in message
        assert "supported: bool, int8-64" in message and "timestamp" in message
        assert "format='arrow'" in message
    with pytest.raises(
        tk.SchemaError, match=r'timestamp column "Country" has type .*must be a datetime'
    ):
        p.send(topic, retail_frame(2), timestamp="Country")
    with pytest.raises(
        tk.SchemaError, match=r'key column "s" of type .* cannot be turned into a key'
    ):
        p.send(topic, pl.DataFrame({"s": [{"a": 1}]}), key="s")
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        tk.ConfigError, match=r'"complex".*str, int64, float64, bool, datetime, date'
    ):
        tk.read_csv(str(path), dtypes={"a": "complex"})
    with pytest.raises(tk.SchemaError, match=r'column "c" is not in .*\["a", "b"\]'):
        tk.read_csv(str(path), dtypes={"c": "int64"})


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_an_empty_frame_sends_nothing_and_reports_zero(bootstrap, topic, fmt):
    p = tk.Producer(bootstrap)
    for empty in [
        retail_frame(0),
        pa.table({"a": pa.array([], pa.int64())}),
        retail_frame(5).head(0),
    ]:
        key = "StockCode" if isinstance(empty, pl.DataFrame) else None
        report = p.send(topic, empty, format=fmt, key=key)
        assert (report.rows, report.messages, report.bytes) == (0, 0, 0)
    assert high_watermarks(tk.Admin(bootstrap), topic) == [0, 0, 0]


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_null_keys_send_keyless_messages(bootstrap, new_topic, fmt):
    # Kafka allows messages without a key: a null key value is one, placed
    # as librdkafka places keyless messages; no row is dropped.
    topic = new_topic(3)
    df = pl.DataFrame({"k": ["a", None, "b", None, "a"], "i": [0, 1, 2, 3, 4]})
    report = tk.Producer(bootstrap).send(topic, df, key="k", format=fmt)
    assert report.rows == 5
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        back = read_all(c, 5).sort("i")
    assert back["i"].to_list() == [0, 1, 2, 3, 4]
    assert back["kafka_key"].to_list() == ["a", None, "b", None, "a"]
    if fmt == "arrow":
        # One message per key: the two null-key rows travel together, keyless.
        assert report.messages == 3
        assert back.filter(pl.col("kafka_key").is_null())["kafka_offset"].n_unique() == 1


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_many_rows_over_message_max_bytes_are_split(bootstrap, topic, fmt):
    limit = 50_000
    df = retail_frame(3_000)
    p = tk.Producer(bootstrap, {"message.max.bytes": limit})
    report = p.send(topic, df, format=fmt, rows_per_message=3_000, schema_header=True)
    assert report.rows == 3_000
    assert report.messages > 5
    assert report.bytes / report.messages < limit
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert read_all(c, 3_000).sort("row").equals(df)


@pytest.mark.parametrize(("fmt", "key"), [("arrow", None), ("arrow", "k"), ("json", None)])
def test_a_single_row_over_message_max_bytes_is_named(bootstrap, new_topic, fmt, key):
    topic = new_topic(1)
    limit = 50_000
    text = ["small"] * 6
    text[4] = "x" * 200_000
    df = pl.DataFrame({"k": ["a", "b"] * 3, "text": text})
    p = tk.Producer(bootstrap, {"message.max.bytes": limit})
    with pytest.raises(tk.SchemaError) as err:
        p.send(topic, df, format=fmt, key=key)
    message = str(err.value)
    assert re.search(r"row 4 alone encodes to 200\d\d\d bytes", message), message
    assert f"over the {limit - limit // 50} bytes" in message
    assert "raise 'message.max.bytes'" in message
    assert re.search(r"\d rows before it were queued: flush\(\) reports them", message), message
    # The rows queued before it are not lost: flush() reports them delivered.
    queued = p.flush(timeout=20)
    assert queued.rows >= 1
    assert sum(high_watermarks(tk.Admin(bootstrap), topic)) == queued.messages
    # Rows split across batches are numbered across the whole send.
    table = pa.Table.from_batches(df.to_arrow().to_batches(max_chunksize=2))
    with pytest.raises(tk.SchemaError, match="row 4 alone"):
        p.send(topic, table, format=fmt, key=key)


def test_non_utf8_csv_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"code,text\n1,fine\n2,caf\xe9\n")
    with pytest.raises(tk.SchemaError, match=r"line 3.*text.*encoding='latin-1'"):
        tk.read_csv(path, encoding="utf-8")
    assert tk.read_csv(path)["text"].to_list() == ["fine", "café"]  # auto: Latin-1 there
    path.write_bytes(b"co\xffde,text\n1,x\n")
    with pytest.raises(
        tk.SchemaError, match="header line .* not valid UTF-8: pass encoding='latin-1'"
    ):
        tk.read_csv(path, encoding="utf-8")


# -- consuming poison messages ---------------------------------------------------

HEADER = {"tskafka.schema": b'[["i","Int64"]]'}


def poison_cases() -> list[tuple[str, bytes, dict[str, bytes] | None, str]]:
    """(what, payload, headers, words the error must contain)."""
    good = ipc(pa.table({"i": pa.array(range(100, 200), pa.int64())}))
    return [
        ("random bytes", bytes(range(7, 47)), None, "neither Arrow IPC nor JSON"),
        ("truncated Arrow IPC", good[: len(good) // 2], None, "invalid Arrow IPC stream"),
        ("array of non-objects", b"[1, 2, 3]", None, "not an object"),
        ("a JSON scalar", b"42", None, "JSON a number, not an object"),
        ("a JSON string", b'"hello"', None, "JSON a string, not an object"),
        ("nested where the schema says int", b'{"i": {"deep": [1]}}', HEADER, "invalid JSON row"),
        ("text where the schema says int", b'{"i": "seven"}', HEADER, "invalid JSON row"),
        ("unclosed JSON", b'{"i": 1', HEADER, "invalid JSON row"),
        ("two objects in one message", b'{"i": 1}{"i": 2}', HEADER, "one object"),
    ]


def fill_poisoned_topic(bootstrap, topic, raw) -> list[tuple[int, str]]:
    """Good rows 0..9, then each poison message followed by one good row;
    returns [(offset, expected error words)] of the poison messages."""
    p = tk.Producer(bootstrap)
    p.send(topic, numbered(0, 10), partition=0, rows_per_message=10)
    offset, bad = 1, []
    for n, (_, payload, headers, words) in enumerate(poison_cases()):
        raw(topic, payload, headers)
        bad.append((offset, words))
        p.send(topic, numbered(10 + n, 11 + n), partition=0)
        offset += 2
    return bad


def test_poison_messages_raise_decode_error_and_good_rows_flow_on(bootstrap, new_topic, raw):
    topic = new_topic(1)
    bad = fill_poisoned_topic(bootstrap, topic, raw)
    good = 10 + len(bad)
    rows, errors = [], []
    group = f"poison-{topic}"
    with tk.Consumer(
        bootstrap, topics=[topic], offset="earliest", group_id=group, auto_commit=False
    ) as c:
        deadline = time.monotonic() + 30
        while (len(rows) < good or len(errors) < len(bad)) and time.monotonic() < deadline:
            try:
                frame = c.poll_frame(timeout=0.5)
            except tk.DecodeError as e:
                errors.append(e)
                if len(errors) == 1:
                    # Not read on past it yet: committing now does not pass it.
                    c.commit()
                    assert c.committed().get((topic, 0), 0) <= bad[0][0]
                continue
            if frame is not None:
                rows.extend(frame["i"].to_list())
        c.commit()
        assert c.committed()[(topic, 0)] == 2 * len(bad) + 1
    assert sorted(rows) == list(range(good))
    assert [(e.topic, e.partition, e.offset) for e in errors] == [(topic, 0, o) for o, _ in bad]
    for e, (offset, words), (what, payload, _, _) in zip(errors, bad, poison_cases()):
        assert words in str(e), (what, str(e))
        assert f"{topic}[0]@{offset}" in str(e)
        assert e.payload == payload, what


def poll_until_decode_error(c: tk.Consumer, rows: list[int]) -> tk.DecodeError:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            frame = c.poll_frame(timeout=0.5)
        except tk.DecodeError as e:
            return e
        if frame is not None:
            rows.extend(frame["i"].to_list())
    raise AssertionError("no DecodeError")


def test_raise_mode_commits_past_a_poison_message_only_once_read_past(bootstrap, new_topic, raw):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 3), partition=0)
    raw(topic, b"\x00\x01 poison")
    tk.Producer(bootstrap).send(topic, numbered(3, 5), partition=0)
    group = f"stop-{topic}"
    for _ in range(2):
        # Stopping at the error (auto-commit on): the group resumes before the
        # poison message, which was never handled, and nothing is lost.
        with tk.Consumer(bootstrap, topics=[topic], offset="earliest", group_id=group) as c:
            assert c.committed().get((topic, 0), 0) <= 1
            e = poll_until_decode_error(c, [])
            assert (e.topic, e.partition, e.offset) == (topic, 0, 1)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", group_id=group) as c:
        rows: list[int] = []
        start = c.committed().get((topic, 0), 0)
        poll_until_decode_error(c, rows)
        # Reading on counts it as consumed; rows before it that an earlier
        # consumer was handed are not read again.
        deadline = time.monotonic() + 20
        while 4 not in rows and time.monotonic() < deadline:
            frame = c.poll_frame(timeout=0.5)
            if frame is not None:
                rows.extend(frame["i"].to_list())
        assert sorted(rows) == list(range(3 if start == 1 else 0, 5))
        c.commit()
        assert c.committed() == {(topic, 0): 3}


def test_skip_mode_keeps_bad_messages_and_commits_past_them(bootstrap, new_topic, raw):
    topic = new_topic(1)
    bad = fill_poisoned_topic(bootstrap, topic, raw)
    good = 10 + len(bad)
    group = f"skip-{topic}"
    with tk.Consumer(
        bootstrap,
        topics=[topic],
        offset="earliest",
        group_id=group,
        on_error="skip",
        auto_commit=False,
    ) as c:
        back = read_all(c, good)
        deadline = time.monotonic() + 10
        while len(c.bad_messages) < len(bad) and time.monotonic() < deadline:
            assert c.poll_frame(timeout=0.3) is None
        c.commit()
        assert c.committed()[(topic, 0)] == 2 * len(bad) + 1
        kept = c.bad_messages
    assert sorted(back["i"].to_list()) == list(range(good))
    assert [(t, p, o) for t, p, o, _, _ in kept] == [(topic, 0, o) for o, _ in bad]
    for (_, _, _, error, payload), (_, words), (what, sent, _, _) in zip(kept, bad, poison_cases()):
        assert words in error, (what, error)
        assert payload == sent, what
    with tk.Consumer(
        bootstrap, topics=[topic], offset="earliest", group_id=group, on_error="skip"
    ) as c:
        assert c.poll_frame(timeout=2.0) is None  # nothing left: neither rows nor poison


class Collect:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def __call__(self, frame: pl.DataFrame) -> None:
        self.rows.extend(frame["i"].to_list())


def test_background_consumer_raises_or_skips_poison(bootstrap, new_topic, raw):
    topic = new_topic(1)
    bad = fill_poisoned_topic(bootstrap, topic, raw)
    good = 10 + len(bad)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", on_error="skip") as c:
        collect = Collect()
        bg = c.start(collect)
        deadline = time.monotonic() + 30
        while (
            len(collect.rows) < good or len(c.bad_messages) < len(bad)
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        bg.stop()
        assert sorted(collect.rows) == list(range(good))
        assert [m[2] for m in c.bad_messages] == [o for o, _ in bad]
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        collect = Collect()
        bg = c.start(collect)
        with pytest.raises(tk.DecodeError, match=rf"{topic}\[0\]@1\b"):
            bg.join(timeout=30)
        assert isinstance(bg.status.error, tk.DecodeError)
        with pytest.raises(tk.DecodeError):
            bg.stop()
        # Reading on with poll_frame: every good row still arrives once.
        rows, errors = list(collect.rows), 1
        deadline = time.monotonic() + 30
        while len(rows) < good and time.monotonic() < deadline:
            try:
                frame = c.poll_frame(timeout=0.5)
            except tk.DecodeError:
                errors += 1
                continue
            if frame is not None:
                rows.extend(frame["i"].to_list())
        assert sorted(rows) == list(range(good))
        assert errors == len(bad)


def test_a_field_changing_type_between_foreign_json_messages(bootstrap, new_topic, raw):
    # Without a schema header types are inferred: numbers and text in one
    # column are text, the numbers as written (pandas' chunks, typed each on
    # their own, send such columns).
    topic = new_topic(1)
    for payload in [b'{"a": 1}', b'{"a": 2}', b'{"a": "x"}', b'{"a": 3.5}']:
        raw(topic, payload)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", on_error="skip") as c:
        frames = []
        deadline = time.monotonic() + 20
        while sum(map(len, frames)) < 4 and time.monotonic() < deadline:
            frame = c.poll_frame(timeout=0.5)
            if frame is not None:
                frames.append(frame)
        assert c.bad_messages == []
    assert [f["a"].to_list() for f in frames] == [["1", "2", "x", "3.5"]]
    assert [f.schema["a"] for f in frames] == [pl.String]


def test_arrow_messages_with_other_schemas_union_or_start_a_new_frame(bootstrap, new_topic, raw):
    topic = new_topic(1)
    raw(topic, ipc(pa.table({"a": pa.array([1], pa.int64())})))
    raw(topic, ipc(pa.table({"b": pa.array(["x"])})))  # other columns: unioned
    raw(topic, ipc(pa.table({"a": pa.array(["text"])})))  # a changes type: next frame
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        frames = []
        deadline = time.monotonic() + 20
        while sum(map(len, frames)) < 3 and time.monotonic() < deadline:
            frame = c.poll_frame(timeout=0.5)
            if frame is not None:
                frames.append(frame)
    assert frames[0].to_dicts() == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
    assert frames[1].to_dicts() == [{"a": "text"}]


def test_fuzz_corpus_messages_end_to_end(bootstrap, new_topic, raw):
    """Inputs the fuzzers found (and seeds cut short) as messages on a topic:
    each is refused with a DecodeError, or decodes; good rows around them arrive."""
    files = (
        sorted(CORPUS.glob("arrow_ipc/*"))
        + sorted(CORPUS.glob("json/*"))
        + sorted(CORPUS.glob("auto/*"))
    )
    crashers = [f for f in files if not f.name.startswith("seed-")]
    seeds = [f for f in files if f.name.startswith("seed-")]
    payloads = [f.read_bytes() for f in crashers[:12]]
    payloads += [s.read_bytes()[: len(s.read_bytes()) * 2 // 3] for s in seeds[:6]]
    payloads = [p for p in payloads if p]
    topic = new_topic(1)
    p = tk.Producer(bootstrap)
    for n, payload in enumerate(payloads):
        p.send(topic, numbered(n, n + 1), partition=0)
        raw(topic, payload)
    p.send(topic, numbered(len(payloads), len(payloads) + 1), partition=0)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", on_error="skip") as c:
        rows: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = c.poll_frame(timeout=1.0)
            if frame is None and len(rows) >= len(payloads) + 1:
                break
            if frame is not None and "i" in frame.columns:
                rows.extend(v for v in frame["i"].to_list() if v is not None)
        skipped = c.bad_messages
    assert sorted(rows) == list(range(len(payloads) + 1))
    assert len(skipped) >= len(payloads) // 2
    for _, _, offset, error, payload in skipped:
        assert offset % 2 == 1 and payload == payloads[offset // 2]
        assert "decoder failed" not in error
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        errors = 0
        deadline = time.monotonic() + 30
        while errors < len(skipped) and time.monotonic() < deadline:
            try:
                c.poll_frame(timeout=0.5)
            except tk.DecodeError as e:
                assert e.offset % 2 == 1 and e.payload == payloads[e.offset // 2]
                errors += 1
        assert errors == len(skipped)


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_an_all_null_column_is_sent(bootstrap, new_topic, fmt):
    # Polars gives such a column the Null dtype; it travels as nulls.
    topic = new_topic(1)
    df = pl.DataFrame({"i": [1, 2], "nothing": [None, None]})
    assert tk.Producer(bootstrap).send(topic, df, format=fmt).rows == 2
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        back = read_all(c, 2)
    assert back["i"].to_list() == [1, 2] and back["nothing"].null_count() == 2


def test_a_column_named_like_a_metadata_column(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, pl.DataFrame({"kafka_offset": [7]}))
    with (
        tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c,
        pytest.raises(tk.SchemaError, match='column named "kafka_offset".*metadata=False'),
    ):
        for _ in range(40):
            c.poll_frame(timeout=0.5)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert read_all(c, 1)["kafka_offset"].to_list() == [7]
