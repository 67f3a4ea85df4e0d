"""Writes the seed corpus under tests/fuzz_corpus/<target>/ (run once; the
seeds are committed): valid messages of the kinds tskafka reads."""

import datetime as dt
import io
import json
import pathlib

import polars as pl
import pyarrow as pa

root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fuzz_corpus"
SEP = b"\n--\n"


def ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def write(target: str, name: str, data: bytes) -> None:
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


start = dt.datetime(2009, 12, 1, 7, 45)
retail = pl.DataFrame(
    {
        "Invoice": ["489434", "C489435", None],
        "StockCode": ["85123A", "47566", "POST"],
        "Description": ["WHITE HANGING HEART T-LIGHT HOLDER", "PARTY BUNTING — “Fête” ünïcødé ✓", None],
        "Quantity": [6, -12, None],
        "InvoiceDate": [start, start + dt.timedelta(minutes=1), None],
        "Price": [2.55, 0.1, None],
        "Country": ["United Kingdom", "Österreich", "EIRE"],
    }
)
arrow_tables = {
    "retail-views": retail.to_arrow(),  # polars writes string views
    "retail-utf8": retail.to_arrow().cast(
        pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type) for f in retail.to_arrow().schema])
    ),
    "dict": pa.table({"d": pa.array(["x", "y", "x", None]).dictionary_encode(), "n": [1, 2, 3, 4]}),
    "nested": pa.table({"l": [[1, 2], None, []], "s": [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}]}),
    "types": pa.table(
        {
            "b": [True, None],
            "i8": pa.array([1, -1], pa.int8()),
            "u64": pa.array([2**63, 0], pa.uint64()),
            "f16": pa.array([1.5, None], pa.float32()),
            "date": pa.array([dt.date(2020, 1, 1), None]),
            "tz": pa.array([start, None], pa.timestamp("ms", tz="Europe/Paris")),
            "dec": pa.array([1, 2], pa.decimal128(10, 2)),
            "bin": pa.array([b"\x00\xff", None]),
            "null": pa.nulls(2),
        }
    ),
    "empty": pa.table({"a": pa.array([], pa.int64())}),
}
for name, table in arrow_tables.items():
    write("arrow_ipc", name, ipc(table))
    write("auto", f"arrow-{name}", ipc(table))
write("arrow_ipc", "two-schemas", ipc(arrow_tables["dict"]) + SEP + ipc(arrow_tables["retail-utf8"]))

header = json.dumps([["a", "Int64"], ["s", "Utf8"], ["t", "Timestamp(Microsecond, Some(\"UTC\"))"]]).encode()
json_seeds = {
    "object": b'{"a": 1, "s": "x", "t": "2009-12-01T07:45:00Z"}',
    "array": b'[{"a": 1, "s": "x"}, {"a": null, "s": "\\u00e9"}]',
    "header": header + SEP + b'{"a": 1, "s": "x", "t": "2009-12-01T07:45:00.123Z"}' + SEP + b'{"a": null, "s": null, "t": null}',
    "type-change": b'{"a": 1}' + SEP + b'{"a": "x"}' + SEP + b'{"a": 1.5, "b": [1]}',
    "nested": b'{"a": {"b": [1, {"c": null}]}, "d": true}',
    "wrong-shapes": b"[1, 2]" + SEP + b'"s"' + SEP + b"3" + SEP + b'[{"a": 1}, 2]',
    "datetimes": b'{"at": "2020-01-01T00:00:00+01:00"}' + SEP + b'{"at": "2020-01-01 00:00:01"}',
}
for name, data in json_seeds.items():
    write("json", name, data)
    write("auto", f"json-{name}", data)
write("auto", "mixed", ipc(arrow_tables["retail-utf8"]) + SEP + json_seeds["object"] + SEP + b"\x00garbage")

csv_seeds = {
    "retail": "Invoice,StockCode,Quantity,t,Price\n489434,85123A,6,12/1/2009 7:45,2.55\nC1,POST,-1,2009-12-01 07:46:00,0.1\n",
    "epoch": "t,v\n1259653500,1.5\n1259653501,\n",
    "quoted": 'a,b\n"x, ""y""",1\n,\n"multi\nline",2\n',
    "zoned": "t,b\n2020-01-01T00:00:00+01:00,true\n2020-01-01T00:00:01Z,false\n",
}
for i, (name, text) in enumerate(csv_seeds.items()):
    write("csv", name, bytes([i * 5 + 4]) + text.encode())
write("csv", "latin1", bytes([0]) + "a,b\nÖsterreich,1\n".encode("latin-1"))
# Record batches as producers write them (kafka-python's builder), each
# compression, with keys, headers and a batch cut short at the end.
from kafka.errors import UnsupportedCodecError
from kafka.record.default_records import DefaultRecordBatchBuilder


def record_batch(compression: int, base: int) -> bytes:
    b = DefaultRecordBatchBuilder(2, compression, False, -1, -1, -1, 1 << 20)
    for i in range(3):
        headers = [("tskafka.schema", b"[]")] if i == 1 else []
        key = None if i == 2 else f"k{i}".encode()
        b.append(i, 1_700_000_000_000 + i, key, f'{{"i": {base + i}}}'.encode(), headers)
    out = bytearray(b.build())
    out[0:8] = base.to_bytes(8, "big")
    return bytes(out)


for codec, name in enumerate(["none", "gzip", "snappy", "lz4", "zstd"]):
    try:
        write("records", name, record_batch(codec, 0) + record_batch(codec, 3)[:-5])
    except UnsupportedCodecError as e:  # the codec's Python module is not installed
        print(f"records/{name}: {e}")
print(sorted(str(p.relative_to(root)) for p in root.rglob("seed-*")))
