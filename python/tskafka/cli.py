"""The ``tskafka`` command line: an embedded broker, replay, consume, topics, demos."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from typing import Any

from . import Admin, Config, Consumer, LocalBroker, TsKafkaError, _tskafka, datasets, replay

DEFAULT_BOOTSTRAP = "localhost:9092"


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def _config(args: argparse.Namespace, section: str | None) -> Config:
    """Client properties: the --config file, then $TSKAFKA_* variables, then
    -X properties and --bootstrap, each winning over the ones before."""
    config = Config.from_ini(args.config) if args.config else Config()
    config = config | Config.from_env()
    for n, prop in enumerate(args.property or [], 1):
        key, eq, value = prop.partition("=")
        if not eq or not key.strip():
            # The argument is not shown: it may be a secret.
            raise UsageError(f"-X expects property=value (the {n}. -X has no property name or '=')")
        config = config | {key.strip(): value}
    if args.bootstrap:
        config = config | {"bootstrap.servers": args.bootstrap}
    config = config.section(section)
    if not config.get("bootstrap.servers"):
        config = config | {"bootstrap.servers": DEFAULT_BOOTSTRAP}
    return config


def _given_configs(args: argparse.Namespace) -> list[dict[str, str]]:
    """The properties the command was given (file, $TSKAFKA_*, -X), whose
    secrets are scrubbed from what it prints: as its client takes them (its
    config.ini section overlaid), then without the section, for values the
    section overrode. Empty if reading them is what failed."""
    if getattr(args, "config", False) is False:
        return []
    try:
        return [_config(args, section).to_dict() for section in (args.section, None)]
    except Exception:  # noqa: BLE001 - the config itself is what failed: nothing read
        return []


def _scrub(text: str, args: argparse.Namespace) -> str:
    """``text`` without the secret values the command was given (each line of a PEM key too)."""
    for config in _given_configs(args):
        text = _tskafka.scrub(text, config)
    return text


def _line_count(path: str) -> int | None:
    """Data rows of a CSV file (newlines minus the header), for the progress bar."""
    try:
        n = 0
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
        return max(n - 1, 0)
    except OSError:
        return None


def _bar(done: int, total: int | None, width: int = 28) -> str:
    if not total:
        return ""
    filled = min(width, done * width // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * done / total:5.1f}% "


def _source_rows(path: str) -> int | None:
    if path.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return _line_count(path)


def _replay(args: argparse.Namespace) -> int:
    if not os.path.exists(args.file):
        raise UsageError(f"no such file: {args.file}")
    if args.every is not None:
        speed = None
    elif args.speed is None:
        speed = 1.0 if args.time_column else None
    elif args.speed.lower() in ("max", "none"):
        speed = None
    else:
        try:
            speed = float(args.speed)
        except ValueError:
            raise UsageError(f"--speed must be a number or 'max', got {args.speed!r}") from None
        if args.time_column is None:
            raise UsageError("--speed needs --time-column (or pass --speed max, or --every S)")
    total = _source_rows(args.file)
    r = replay(
        args.file,
        args.topic,
        config=_config(args, args.section),
        time_column=args.time_column,
        speed=speed,
        every=args.every,
        rows_per_message=args.rows_per_message,
        key=args.key,
        format=args.format,
        schema_header=args.schema_header,
        encoding=args.encoding,
        time_format=args.time_format,
        on_bad_rows="skip" if args.skip_bad_rows else "error",
        timeout=args.timeout,
    )
    interactive = sys.stderr.isatty() and not args.quiet
    last = 0.0
    try:
        while not r.progress.done:
            time.sleep(0.1)
            if time.monotonic() - last >= (0.2 if interactive else 5.0) and not args.quiet:
                last = time.monotonic()
                p = r.progress
                status = (
                    f"{_bar(p.rows_sent, total)}{p.rows_sent:,} rows sent, "
                    f"{p.rows_delivered:,} delivered"
                    + (f", event time {p.event_time}" if p.event_time else "")
                    + (f", lag {p.lag:.2f}s" if p.lag >= 0.01 else "")
                )
                print(
                    ("\r" if interactive else "") + status.ljust(100),
                    end="" if interactive else "\n",
                    file=sys.stderr,
                    flush=True,
                )
        p = r.wait()
    except KeyboardInterrupt:
        p = r.stop()
        print(f"\nstopped: {p.rows_delivered:,} rows delivered", file=sys.stderr)
        return 130
    if interactive:
        print(file=sys.stderr)
    skipped = f", {p.rows_skipped:,} bad rows skipped" if p.rows_skipped else ""
    print(
        f"replayed {p.rows_delivered:,} rows in {p.messages:,} messages to {args.topic!r} "
        f"in {p.elapsed:.2f}s ({p.rows_per_second:,.0f} rows/s{skipped})"
    )
    for number, why in r.bad_rows[:5]:
        print(f"  skipped line {number}: {why}", file=sys.stderr)
    return 0


def _when(text: str | None, flag: str) -> dt.datetime | None:
    """An ISO date or datetime of --since/--until (naive: UTC)."""
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag} expects an ISO date or datetime (2011-03-01, 2011-03-01T12:00), got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _consume_window(args: argparse.Namespace) -> int:
    """--since/--until: what the topics hold in that time range now, read as
    a snapshot (the range looked up as offsets, only those fetched)."""
    import polars as pl

    from .scan import scan_topic

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until ({args.until}) must come after --since ({args.since})")
    config = _config(args, args.section)
    rows = 0
    writer = None
    try:
        for topic in args.topics:
            frame = scan_topic(
                topic, config=config, time_column=args.time_column, timeout=args.timeout
            )
            column = pl.col(args.time_column or "kafka_timestamp")
            if args.time_column is not None:
                # The column's own zone (a naive column: wall times as UTC).
                zone = frame.collect_schema().get(args.time_column)
                naive = getattr(zone, "time_zone", "UTC") is None
                since_at = since.replace(tzinfo=None) if naive and since else since
                until_at = until.replace(tzinfo=None) if naive and until else until
            else:
                since_at, until_at = since, until
            if since_at is not None:
                frame = frame.filter(column >= since_at)
            if until_at is not None:
                frame = frame.filter(column < until_at)
            if args.max_rows is not None:
                frame = frame.head(args.max_rows - rows)
            got = frame.collect()
            rows += got.height
            if not args.quiet:
                print(f"{topic}: {got.height:,} rows")
                with pl.Config(tbl_rows=args.show, tbl_cols=12, fmt_str_lengths=30):
                    print(got.head(args.show), flush=True)
            if args.out and got.height:
                writer = _append(args.out, got, writer)
            if args.max_rows is not None and rows >= args.max_rows:
                break
    finally:
        if writer is not None:
            writer.close()
    print(f"consumed {rows:,} rows", file=sys.stderr)
    return 0


def _consume(args: argparse.Namespace) -> int:
    import polars as pl

    if args.since is not None or args.until is not None:
        return _consume_window(args)
    rows = 0
    idle_since = time.monotonic()
    writer = None
    with Consumer(
        config=_config(args, args.section),
        topics=args.topics,
        group_id=args.group,
        offset="earliest" if args.from_beginning else None,
        timeout=args.timeout,
        json_orient=args.json_orient,
    ) as consumer:
        try:
            with pl.Config(tbl_rows=args.show, tbl_cols=12, fmt_str_lengths=30):
                while args.max_rows is None or rows < args.max_rows:
                    frame = consumer.poll_frame(max_rows=args.batch_rows, timeout=0.5)
                    if frame is None:
                        if args.idle_timeout and time.monotonic() - idle_since > args.idle_timeout:
                            break
                        continue
                    idle_since = time.monotonic()
                    if args.max_rows is not None:
                        frame = frame.head(args.max_rows - rows)
                    rows += frame.height
                    received = dt.datetime.now().strftime("%H:%M:%S.%f")[:-3]
                    if not args.quiet:
                        print(f"[{received}] {frame.height:,} rows (total {rows:,})")
                        print(frame.head(args.show), flush=True)
                    if args.out:
                        writer = _append(args.out, frame, writer)
        except KeyboardInterrupt:
            pass
        finally:
            if writer is not None:
                writer.close()
    print(f"consumed {rows:,} rows", file=sys.stderr)
    return 0


def _append(path: str, frame: Any, writer: Any) -> Any:
    """Append a frame to a CSV or Parquet file (opened on first use)."""
    table = frame.to_arrow()
    if path.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        return writer
    import pyarrow.csv as pacsv

    if writer is None:
        writer = pacsv.CSVWriter(path, table.schema)
    writer.write_table(table)
    return writer


def _topics(args: argparse.Namespace) -> int:
    admin = Admin(config=_config(args, args.section))
    if args.action == "list":
        for name in admin.list_topics(timeout=args.timeout):
            print(name)
    elif args.action == "create":
        if not args.name:
            raise UsageError("tskafka topics create NAME [--partitions N]")
        for name in args.name:
            admin.create_topic(
                name, partitions=args.partitions, exist_ok=args.exist_ok, timeout=args.timeout
            )
            print(f"created {name} ({args.partitions} partitions)")
    elif args.action == "delete":
        if not args.name:
            raise UsageError("tskafka topics delete NAME")
        for name in args.name:
            admin.delete_topic(name, missing_ok=args.missing_ok, timeout=args.timeout)
            print(f"deleted {name}")
    elif args.action == "describe":
        if not args.name:
            raise UsageError("tskafka topics describe NAME")
        for name in args.name:
            print(admin.describe_topic(name, timeout=args.timeout))
    return 0


def _read_users(path: str) -> dict[str, str]:
    """Users from a file of ``name:password`` lines (blank lines and ``#`` comments skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"--users: cannot read {path}: {e.strerror}") from None
    users: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            # The line is not shown: it may hold a password.
            raise UsageError(f"--users {path} line {n}: expected 'name:password'")
        users[name.strip()] = password
    if not users:
        raise UsageError(f"--users {path} holds no 'name:password' line")
    return users


def _broker(args: argparse.Namespace) -> int:
    if (args.certfile is None) != (args.keyfile is None):
        raise UsageError("TLS needs both --certfile and --keyfile")
    users = _read_users(args.users) if args.users else None
    if args.schema_registry_port is not None and not args.schema_registry:
        raise UsageError("--schema-registry-port needs --schema-registry")
    if args.schema_registry_client_cafile is not None and not (
        args.schema_registry and args.certfile
    ):
        raise UsageError(
            "--schema-registry-client-cafile makes the Schema Registry ask for client "
            "certificates over TLS: also pass --schema-registry, --certfile and --keyfile"
        )
    with LocalBroker(
        port=args.port,
        storage=args.storage,
        certfile=args.certfile,
        keyfile=args.keyfile,
        users=users,
        auto_create_topics=not args.no_auto_create,
        schema_registry=args.schema_registry,
        schema_registry_port=args.schema_registry_port,
        schema_registry_client_cafile=args.schema_registry_client_cafile,
    ) as broker:
        print(
            f"tskafka broker listening on {broker.bootstrap_servers} "
            f"({broker.security_protocol}) (Ctrl+C stops)",
            flush=True,
        )
        if broker.security_protocol != "PLAINTEXT":
            settings = broker.client_config()
            settings.pop("bootstrap.servers", None)
            shown = " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
            print(f"clients set: {shown} (and sasl.password for SASL)", flush=True)
        if args.schema_registry:
            auth = " (HTTP Basic: basic.auth.user.info=name:password)" if users else ""
            if args.schema_registry_client_cafile is not None:
                auth += (
                    " (client certificates signed by "
                    f"{args.schema_registry_client_cafile} required)"
                )
            print(f"schema registry at {broker.schema_registry_url}{auth}", flush=True)
        try:
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    if args.name == "retail":
        frame = datasets.online_retail(rows=args.rows or datasets.RETAIL_ROWS, seed=args.seed)
    elif args.name == "sensors":
        frame = datasets.sensors(rows=args.rows or 1_000, seed=args.seed)
    else:
        frame = datasets.irregular_series(rows=args.rows or 1_000, seed=args.seed)
    datasets.save(frame, args.out)
    print(f"wrote {frame.height:,} rows to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if args.dataset == "sensors":
        return demo.sensors(rows=args.rows or 60, speed=args.speed or 20.0)
    return demo.retail(rows=args.rows or datasets.RETAIL_ROWS, top=args.top, speed=args.speed)


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        "-b",
        help=f"bootstrap servers host:port (default: $TSKAFKA_BOOTSTRAP, the config's, or {DEFAULT_BOOTSTRAP})",
    )
    p.add_argument(
        "--config",
        "-c",
        help="config.ini (Confluent layout: [default] overlaid by [producer]/[consumer]/[admin]) "
        "or a file of librdkafka key=value properties",
    )
    p.add_argument(
        "-X",
        dest="property",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka property, winning over --config and $TSKAFKA_* (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the cluster")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tskafka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="replay a dataset through an embedded broker and watch it")
    demo.add_argument("dataset", nargs="?", choices=["retail", "sensors"], default="retail")
    demo.add_argument("--rows", type=int, help="rows to generate")
    demo.add_argument("--top", type=int, default=10, help="stock codes shown (retail)")
    demo.add_argument(
        "--speed", type=float, help="replay speed (default: flat out for retail, 20x for sensors)"
    )
    demo.set_defaults(run=_demo)

    broker = sub.add_parser("broker", help="run the embedded broker in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument(
        "--storage",
        help="file keeping topics, records and offsets across restarts (default: memory)",
    )
    broker.add_argument(
        "--certfile", help="TLS: PEM server certificate (its chain after it); needs --keyfile"
    )
    broker.add_argument("--keyfile", help="TLS: PEM private key of --certfile")
    broker.add_argument(
        "--users",
        metavar="FILE",
        help="SASL/PLAIN: file of 'name:password' lines (passwords stay off the command line)",
    )
    broker.add_argument(
        "--no-auto-create",
        action="store_true",
        help="a topic must be created before use (default: made on first produce or "
        "metadata request, 1 partition, as Kafka's auto.create.topics.enable)",
    )
    broker.add_argument(
        "--schema-registry",
        action="store_true",
        help="also serve a Confluent-compatible Schema Registry (schemas kept in _schemas)",
    )
    broker.add_argument(
        "--schema-registry-port",
        type=int,
        metavar="N",
        help="the Schema Registry's port (default: a free one)",
    )
    broker.add_argument(
        "--schema-registry-client-cafile",
        metavar="PATH",
        help="mTLS: the Schema Registry asks for a client certificate signed by this PEM CA "
        "and refuses a connection without one (needs --schema-registry and TLS; the Kafka "
        "listener does not ask)",
    )
    broker.set_defaults(run=_broker)

    rp = sub.add_parser("replay", help="replay a CSV or Parquet file into a topic")
    rp.add_argument("file")
    rp.add_argument("topic")
    rp.add_argument("--time-column", "-t", help="event-time column")
    rp.add_argument(
        "--speed",
        "-s",
        help="10 = ten times faster than recorded; 'max' = flat out (default 1 with --time-column, else max)",
    )
    rp.add_argument("--every", type=float, help="fixed interval: one message every S seconds")
    rp.add_argument("--rows-per-message", type=int)
    rp.add_argument("--key", "-k", action="append", help="key column (repeat for several)")
    rp.add_argument(
        "--format",
        choices=["arrow", "json", "csv", "text", "avro", "json_schema"],
        default="arrow",
    )
    rp.add_argument(
        "--schema-header",
        action="store_true",
        help="json: carry the column types in a tskafka.schema header on every message",
    )
    rp.add_argument("--encoding", default="auto", help="auto, utf-8 or latin-1")
    rp.add_argument("--time-format", help="strftime format or epoch_s/epoch_ms/epoch_us/epoch_ns")
    rp.add_argument(
        "--skip-bad-rows", action="store_true", help="skip and count rows that do not parse"
    )
    rp.add_argument("--quiet", "-q", action="store_true")
    _add_client_options(rp)
    rp.set_defaults(run=_replay, section="producer")

    co = sub.add_parser("consume", help="print what arrives on topics, batch by batch")
    co.add_argument("topics", nargs="+")
    co.add_argument("--from-beginning", action="store_true")
    co.add_argument("--group", "-g", help="consumer group (default: a fresh one)")
    co.add_argument("--max-rows", type=int, help="stop after this many rows")
    co.add_argument("--idle-timeout", type=float, help="stop after this many seconds without data")
    co.add_argument("--batch-rows", type=int, default=100_000)
    co.add_argument("--show", type=int, default=5, help="rows printed per batch")
    co.add_argument("--out", help="also append the rows to this CSV or Parquet file")
    co.add_argument(
        "--json-orient",
        choices=["records", "columns", "index", "split", "values", "table"],
        help="how JSON messages are laid out, in pandas' names (default: detected)",
    )
    co.add_argument("--quiet", "-q", action="store_true")
    co.add_argument(
        "--since",
        help="read what the topics hold from this time on (ISO date or datetime, naive: UTC) "
        "and exit: only that range is fetched",
    )
    co.add_argument("--until", help="... up to this time (exclusive); with or without --since")
    co.add_argument(
        "--time-column",
        help="with --since/--until: filter rows on this data column (the one the messages' "
        "timestamps came from) rather than on the Kafka timestamps",
    )
    _add_client_options(co)
    co.set_defaults(run=_consume, section="consumer")

    tp = sub.add_parser("topics", help="list, create, delete or describe topics")
    tp.add_argument(
        "action", nargs="?", choices=["list", "create", "delete", "describe"], default="list"
    )
    tp.add_argument("name", nargs="*")
    tp.add_argument("--partitions", "-p", type=int, default=1)
    tp.add_argument("--exist-ok", action="store_true")
    tp.add_argument("--missing-ok", action="store_true")
    _add_client_options(tp)
    tp.set_defaults(run=_topics, section="admin")

    ds = sub.add_parser("dataset", help="write a dataset to CSV or Parquet")
    ds.add_argument("name", choices=["retail", "sensors", "values"])
    ds.add_argument("out", help="file.csv or file.parquet")
    ds.add_argument("--rows", type=int)
    ds.add_argument("--seed", type=int, default=0)
    ds.set_defaults(run=_dataset)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Client properties come from --config, then
    $TSKAFKA_* variables (TSKAFKA_SASL_PASSWORD -> sasl.password), then -X
    and --bootstrap. Secret values never appear in what it prints."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as e:
        print(f"tskafka {args.command}: {_scrub(str(e), args)}", file=sys.stderr)
        return 2
    except TsKafkaError as e:
        print(f"tskafka {args.command}: {_scrub(str(e), args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - a bug's traceback, printed without the secrets
        print(_scrub(traceback.format_exc(), args), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
